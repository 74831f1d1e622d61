"""ca.json: step-ca's configuration schema, read into typed settings."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from stepca.errors import ConfigError
from stepca.names import check_common_name, check_host_names
from stepca.timeutil import parse_duration

__all__ = ["CRLOptions", "Config", "ConfigError", "LoggerOptions", "MetricsOptions",
           "OCSPOptions", "Problems", "ServerOptions", "TLSOptions", "check_keys", "flag",
           "split_address", "url_for"]

DEFAULT_CIPHER_SUITES = ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
MAX_CONFIG_BYTES = 4 * 1024 * 1024


# ca.json's top level and authority block as step-ca 0.19 reads them, and ours: another key is
# reported as a warning (a newer step-ca's, or a typo), not refused
TOP_LEVEL_KEYS = ("root", "federatedRoots", "crt", "key", "address", "insecureAddress",
                  "dnsNames", "kms", "ssh", "logger", "db", "monitoring", "authority", "tls",
                  "password", "templates", "commonName", "crl", "ocsp", "server", "metrics")
AUTHORITY_KEYS = ("authorityId", "deploymentType", "provisioners", "admins", "template",
                  "claims", "disableIssuedAtCheck", "backdate", "enableAdmin", "policy")
T = TypeVar("T")


class Problems:
    """What is wrong with a configuration, gathered so that one run reports all of it."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, problem: str) -> None:
        self.errors.append(problem)

    def attempt(self, read: Callable[[], T]) -> T | None:
        """``read()``, or None with its ``ConfigError``'s problems recorded."""
        try:
            return read()
        except ConfigError as exc:
            self.errors.extend(exc.problems)
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise ConfigError(*self.errors)


def check_keys(block: str, data: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """One problem per key of ``data`` not in ``known``, with the likely one it misspells."""
    known = list(known)
    problems = []
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            problems.append(f"{block}: unknown setting {str(key)!r} ({hint})")
    return problems


def flag(block: str, data: Mapping[str, Any], key: str, default: bool) -> bool:
    """A boolean setting: JSON true or false, never a string or a number."""
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{block}.{key} must be true or false, not {json.dumps(value)}")
    return value


def _block(name: str, data: Any) -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name} must be an object")
    return data


def split_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9000"``, ``":443"`` or ``"[::1]:9000"`` into (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid address {address!r}: want host:port, e.g. 127.0.0.1:9000")
    return host.strip("[]"), int(port)


def url_for(scheme: str, host: str, address: str, path: str = "") -> str:
    """``scheme://host[:port]path`` for a listener on ``address``, the port left out when it
    is the scheme's default."""
    _, port = split_address(address)
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}[scheme]
    return f"{scheme}://{host}{'' if port == default else f':{port}'}{path}"


@dataclass(frozen=True)
class TLSOptions:
    cipher_suites: tuple[str, ...] = DEFAULT_CIPHER_SUITES
    min_version: float = 1.2
    max_version: float = 1.3
    renegotiation: bool = False

    KEYS: ClassVar[tuple[str, ...]] = ("cipherSuites", "minVersion", "maxVersion",
                                       "renegotiation")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TLSOptions:
        data = _block("tls", data)
        problems = Problems()
        for problem in check_keys("tls", data, cls.KEYS):
            problems.add(problem)
        suites = data.get("cipherSuites") or DEFAULT_CIPHER_SUITES
        if not isinstance(suites, (list, tuple)) or not all(isinstance(x, str) for x in suites):
            problems.add("tls.cipherSuites must be a list of cipher suite names")
        renegotiation = problems.attempt(lambda: flag("tls", data, "renegotiation", False))
        try:
            versions = float(data.get("minVersion") or 1.2), float(data.get("maxVersion") or 1.3)
        except (TypeError, ValueError):
            problems.add("tls: versions must be 1.0, 1.1, 1.2 or 1.3")
            versions = (1.2, 1.3)
        problems.raise_any()
        options = cls(cipher_suites=tuple(suites), min_version=versions[0],
                      max_version=versions[1], renegotiation=bool(renegotiation))
        if options.min_version > options.max_version:
            raise ConfigError("tls: minVersion cannot exceed maxVersion")
        if options.min_version not in (1.0, 1.1, 1.2, 1.3) or options.max_version not in (
                1.0, 1.1, 1.2, 1.3):
            raise ConfigError("tls: versions must be 1.0, 1.1, 1.2 or 1.3")
        return options

    def to_json(self) -> dict[str, Any]:
        return {"cipherSuites": list(self.cipher_suites), "minVersion": self.min_version,
                "maxVersion": self.max_version, "renegotiation": self.renegotiation}


@dataclass(frozen=True)
class CRLOptions:
    """step-ca's ``crl`` block."""

    enabled: bool = False
    generate_on_revoke: bool = True
    cache_duration: timedelta = timedelta(hours=24)
    renew_period: timedelta = timedelta(hours=16)
    idp_url: str = ""

    KEYS: ClassVar[tuple[str, ...]] = ("enabled", "generateOnRevoke", "cacheDuration",
                                       "renewPeriod", "idpURL")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, dns_names: tuple[str, ...]) -> CRLOptions:
        data = _block("crl", data)
        problems = Problems()
        for problem in check_keys("crl", data, cls.KEYS):
            problems.add(problem)
        enabled = problems.attempt(lambda: flag("crl", data, "enabled", False))
        on_revoke = problems.attempt(lambda: flag("crl", data, "generateOnRevoke", True))
        try:
            cache = parse_duration(str(data.get("cacheDuration") or "24h"))
            renew = (parse_duration(str(data["renewPeriod"])) if data.get("renewPeriod")
                     else cache * 2 / 3)
            if cache <= timedelta(0) or renew <= timedelta(0) or renew > cache:
                problems.add("crl: cacheDuration must be positive and renewPeriod at most "
                             "cacheDuration")
        except ValueError as exc:
            problems.add(f"crl: {exc}")
        problems.raise_any()
        # step-ca's default, which assumes port 443 (docs/compatibility.md says what to set)
        default = url_for("https", dns_names[0] if dns_names else "localhost", ":443",
                          "/1.0/crl")
        return cls(enabled=bool(enabled), generate_on_revoke=bool(on_revoke),
                   cache_duration=cache, renew_period=renew,
                   idp_url=str(data.get("idpURL") or default))


@dataclass(frozen=True)
class OCSPOptions:
    """Our ``ocsp`` block: an RFC 6960 responder at ``/ocsp`` (and on ``insecureAddress``)."""

    enabled: bool = False
    url: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, dns_names: tuple[str, ...],
                  address: str, insecure_address: str = "") -> OCSPOptions:
        """The default ``url`` is the responder on the first DNS name with the listener's port:
        the plain-HTTP one when ``insecureAddress`` is set (OCSP clients commonly speak only
        http), else the HTTPS one."""
        data = _block("ocsp", data)
        problems = Problems()
        for problem in check_keys("ocsp", data, ("enabled", "url")):
            problems.add(problem)
        enabled = problems.attempt(lambda: flag("ocsp", data, "enabled", False))
        problems.raise_any()
        host = dns_names[0] if dns_names else "localhost"
        default = (url_for("http", host, insecure_address, "/ocsp") if insecure_address
                   else url_for("https", host, address, "/ocsp"))
        return cls(enabled=bool(enabled), url=str(data.get("url") or default))


# an HTTP header name (RFC 9110's token)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


@dataclass(frozen=True)
class LoggerOptions:
    """step-ca's ``logger`` block: ``format`` ``"text"`` (the default) or ``"json"`` (one
    JSON object per line); ``traceHeader``, the header read for a request id when
    ``X-Request-Id`` is absent (step-ca's default, ``X-Smallstep-Id``)."""

    format: str = "text"
    trace_header: str = "X-Smallstep-Id"

    FORMATS: ClassVar[tuple[str, ...]] = ("text", "json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> LoggerOptions:
        data = _block("logger", data)
        problems = Problems()
        for problem in check_keys("logger", data, ("format", "traceHeader")):
            problems.add(problem)
        fmt = data.get("format") or "text"
        if fmt not in cls.FORMATS:
            # step-ca's "common" (Apache's access log format) is not one of ours
            problems.add(f"logger.format must be \"text\" or \"json\", not {json.dumps(fmt)}")
        header = data.get("traceHeader") or cls.trace_header
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            problems.add(f"logger.traceHeader must be an HTTP header name, not "
                         f"{json.dumps(header)}")
        problems.raise_any()
        return cls(format=fmt, trace_header=header)


@dataclass(frozen=True)
class MetricsOptions:
    """Our ``metrics`` block: Prometheus metrics in plain HTTP on ``address`` (``/metrics``);
    every worker's counts are kept in a private folder made at each start inside
    ``directory`` (default: the system's temporary folder) and removed at exit."""

    address: str
    directory: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> MetricsOptions | None:
        if data is None:
            return None
        data = _block("metrics", data)
        problems = Problems()
        for problem in check_keys("metrics", data, ("address", "directory")):
            problems.add(problem)
        address = data.get("address")
        if not isinstance(address, str) or not address:
            problems.add("metrics.address is required: host:port, e.g. 127.0.0.1:9090")
        else:
            problems.attempt(lambda: split_address(address))
        directory = data.get("directory")
        if directory is not None and (not isinstance(directory, str) or not directory):
            problems.add("metrics.directory must be a folder's path")
        problems.raise_any()
        return cls(address=str(address), directory=directory)


@dataclass(frozen=True)
class ServerOptions:
    """Our own ``server`` block: how gunicorn runs the CA and what one worker process accepts
    from its clients (one-thread workers; see ``stepca.httpserver``)."""

    workers: int = field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 4)))
    threads: int = 1
    max_request_bytes: int = 64 * 1024
    max_header_bytes: int = 64 * 1024
    """The request line and headers together."""
    keep_alive: int = 5
    """Seconds an idle connection stays open between requests."""
    header_timeout: int = 10
    """Seconds for a request line and headers to arrive once their first byte has."""
    request_timeout: int = 30
    """Seconds for a request body to arrive once its headers have."""
    max_connections: int | None = None
    """Connections one worker process holds at once (default: what its file-descriptor limit
    allows, at most 4096)."""
    max_connections_per_client: int | None = None
    """Connections one client address holds in one worker (default: a quarter of
    ``max_connections``)."""

    _KEYS: ClassVar[dict[str, str]] = {
        "workers": "workers", "threads": "threads", "maxRequestBytes": "max_request_bytes",
        "maxHeaderBytes": "max_header_bytes", "keepAlive": "keep_alive",
        "headerTimeout": "header_timeout", "requestTimeout": "request_timeout",
        "maxConnections": "max_connections",
        "maxConnectionsPerClient": "max_connections_per_client"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ServerOptions:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError("server must be an object")
        problems = Problems()
        for problem in check_keys("server", data, cls._KEYS):
            problems.add(problem)
        values: dict[str, Any] = {}
        for key, attr in cls._KEYS.items():
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int):
                problems.add(f"server: {key} must be a whole number")
            values[attr] = value
        problems.raise_any()
        options = cls(**values)
        if options.workers < 1 or options.threads < 1:
            raise ConfigError("server: workers and threads must be at least 1")
        if not (1024 <= options.max_request_bytes <= 16 * 1024 * 1024
                and 1024 <= options.max_header_bytes <= 1024 * 1024):
            raise ConfigError("server: maxRequestBytes must be between 1 KiB and 16 MiB and "
                              "maxHeaderBytes between 1 KiB and 1 MiB")
        if not all(1 <= seconds <= 300 for seconds in (
                options.keep_alive, options.header_timeout, options.request_timeout)):
            raise ConfigError("server: keepAlive, headerTimeout and requestTimeout must be "
                              "between 1 and 300 seconds")
        for key, value in (("maxConnections", options.max_connections),
                           ("maxConnectionsPerClient", options.max_connections_per_client)):
            if value is not None and value < 1:
                raise ConfigError(f"server: {key} must be at least 1")
        return options


@dataclass(frozen=True)
class Config:
    path: Path
    raw: dict[str, Any]
    roots: tuple[Path, ...]
    federated_roots: tuple[Path, ...]
    crt: Path
    key: str
    address: str
    insecure_address: str
    dns_names: tuple[str, ...]
    db: dict[str, Any] | None
    kms: dict[str, Any] | None
    authority: dict[str, Any]
    tls: TLSOptions
    password: str | None
    common_name: str
    server: ServerOptions
    crl: CRLOptions = field(default_factory=CRLOptions)
    ocsp: OCSPOptions = field(default_factory=OCSPOptions)
    logger: LoggerOptions = field(default_factory=LoggerOptions)
    metrics: MetricsOptions | None = None
    warnings: tuple[str, ...] = ()
    """Keys neither step-ca 0.19 nor stepca reads (a newer step-ca's, or a typo)."""

    @property
    def steppath(self) -> Path:
        """``$STEPPATH`` as ca.json's location implies (``<steppath>/config/ca.json``)."""
        return self.path.resolve().parent.parent

    @property
    def provisioners(self) -> list[dict[str, Any]]:
        return list(self.authority.get("provisioners") or [])

    @classmethod
    def load(cls, path: str | Path, *, problems: Problems | None = None) -> Config:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{path} is larger than 4 MiB")
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_json(raw, path=path, problems=problems)

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, path: Path,
                  problems: Problems | None = None) -> Config:
        """Every problem of ``raw`` at once, as one ``ConfigError``; unknown keys at the top
        level and in ``authority`` are ``warnings``. Given ``problems``, records them there
        instead and returns a config whose faulty blocks have their defaults, so that a check
        goes on to what depends on it; it still raises if a required setting is missing."""
        if not isinstance(raw, dict):
            raise ConfigError("ca.json must hold a JSON object")
        base = path.resolve().parent.parent
        lenient = problems is not None
        problems = problems if problems is not None else Problems()

        def resolve(value: str) -> Path:
            p = Path(os.path.expanduser(value))
            return p if p.is_absolute() else base / p

        roots = raw.get("root")
        if isinstance(roots, str):
            roots = [roots]
        if not roots:
            problems.add("ca.json: 'root' is required")
        for required in ("crt", "key", "address"):
            if not raw.get(required):
                problems.add(f"ca.json: '{required}' is required")
        address = str(raw.get("address") or "")
        insecure_address = str(raw.get("insecureAddress") or "")
        if address:
            problems.attempt(lambda: split_address(address))
        if insecure_address:
            problems.attempt(lambda: split_address(insecure_address))
        dns_names = problems.attempt(
            lambda: _dns_names(raw.get("dnsNames") or ["localhost", "127.0.0.1", "::1"])) or ()
        authority = raw.get("authority")
        if authority is None:
            # step-ca 0.19 fills in an empty block and serves a CA that can issue nothing
            problems.add("ca.json: 'authority' is required: the block that lists the "
                         "provisioners")
        elif not isinstance(authority, dict):
            problems.add("ca.json: 'authority' must be an object")
            authority = None
        common_name = raw.get("commonName") or "Step Online CA"
        problems.attempt(lambda: _check_common_name("commonName", common_name))
        warnings = check_keys("ca.json", raw, TOP_LEVEL_KEYS)
        if authority is not None:
            template = authority.get("template") or {}
            if isinstance(template, dict) and template.get("commonName"):
                problems.attempt(lambda: _check_common_name("authority.template.commonName",
                                                            template["commonName"]))
            for key in ("disableIssuedAtCheck", "enableAdmin"):
                problems.attempt(lambda key=key: flag("authority", authority, key, False))
            warnings += check_keys("authority", authority, AUTHORITY_KEYS)
            if not authority.get("provisioners"):
                warnings.append("authority: no provisioners: the CA issues no new certificate "
                                "(renewals and revocations by mutual TLS still work)")
        db = raw.get("db")
        if db is not None and not isinstance(db, dict):
            problems.add("ca.json: 'db' must be an object")
        tls = problems.attempt(lambda: TLSOptions.from_json(raw.get("tls")))
        server = problems.attempt(lambda: ServerOptions.from_json(raw.get("server")))
        crl = problems.attempt(lambda: CRLOptions.from_json(raw.get("crl"), dns_names=dns_names))
        ocsp = problems.attempt(lambda: OCSPOptions.from_json(
            raw.get("ocsp"), dns_names=dns_names, address=address or ":443",
            insecure_address=insecure_address))
        logger = problems.attempt(lambda: LoggerOptions.from_json(raw.get("logger")))
        metrics = problems.attempt(lambda: MetricsOptions.from_json(raw.get("metrics")))
        if not lenient or not all(raw.get(k) for k in ("root", "crt", "key", "address",
                                                         "authority")):
            problems.raise_any()
        key = str(raw["key"])
        return cls(
            path=path,
            raw=raw,
            roots=tuple(resolve(r) for r in roots or ()),
            federated_roots=tuple(resolve(r) for r in raw.get("federatedRoots") or ()),
            crt=resolve(raw["crt"]),
            key=key if "://" in key or ":" in key.split("/")[0] else str(resolve(key)),
            address=address,
            insecure_address=insecure_address,
            dns_names=dns_names,
            db=db,
            kms=raw.get("kms"),
            authority=authority or {},
            tls=tls or TLSOptions(),
            password=raw.get("password"),
            common_name=common_name,
            server=server or ServerOptions(),
            crl=crl or CRLOptions(),
            ocsp=ocsp or OCSPOptions(),
            logger=logger or LoggerOptions(),
            metrics=metrics,
            warnings=tuple(warnings),
        )


def _dns_names(names: Any) -> tuple[str, ...]:
    """The names of the CA's own TLS certificate: checked now, since a name the certificate
    cannot carry would otherwise stop the server when it issues that certificate."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError("ca.json: 'dnsNames' must be a list of host names and IP addresses")
    try:
        check_host_names(names)
    except ValueError as exc:
        raise ConfigError(f"ca.json dnsNames: {exc}") from None
    return tuple(names)


def _check_common_name(field: str, value: Any) -> None:
    try:
        if not isinstance(value, str):
            raise ValueError("it must be a string")
        check_common_name(value)
    except ValueError as exc:
        raise ConfigError(f"ca.json {field}: {exc}") from None
