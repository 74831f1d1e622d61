"""ca.json: step-ca's configuration schema, read into typed settings."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from stepca.names import check_common_name, check_host_names
from stepca.timeutil import parse_duration

__all__ = ["CRLOptions", "Config", "ConfigError", "OCSPOptions", "ServerOptions", "TLSOptions",
           "split_address", "url_for"]

DEFAULT_CIPHER_SUITES = ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class ConfigError(ValueError):
    """ca.json is missing, unreadable or invalid; the message says which field."""


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

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TLSOptions:
        data = data or {}
        options = cls(
            cipher_suites=tuple(data.get("cipherSuites") or DEFAULT_CIPHER_SUITES),
            min_version=float(data.get("minVersion") or 1.2),
            max_version=float(data.get("maxVersion") or 1.3),
            renegotiation=bool(data.get("renegotiation", False)),
        )
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, dns_names: tuple[str, ...]) -> CRLOptions:
        data = data or {}
        try:
            cache = parse_duration(str(data.get("cacheDuration") or "24h"))
            renew = (parse_duration(str(data["renewPeriod"])) if data.get("renewPeriod")
                     else cache * 2 / 3)
        except ValueError as exc:
            raise ConfigError(f"crl: {exc}") from None
        if cache <= timedelta(0) or renew <= timedelta(0) or renew > cache:
            raise ConfigError("crl: cacheDuration must be positive and renewPeriod at most "
                              "cacheDuration")
        # step-ca's default, which assumes port 443 (docs/compatibility.md says what to set)
        default = url_for("https", dns_names[0] if dns_names else "localhost", ":443",
                          "/1.0/crl")
        return cls(enabled=bool(data.get("enabled", False)),
                   generate_on_revoke=bool(data.get("generateOnRevoke", True)),
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
        data = data or {}
        host = dns_names[0] if dns_names else "localhost"
        default = (url_for("http", host, insecure_address, "/ocsp") if insecure_address
                   else url_for("https", host, address, "/ocsp"))
        return cls(enabled=bool(data.get("enabled", False)),
                   url=str(data.get("url") or default))


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
        unknown = sorted(set(data) - set(cls._KEYS))
        if unknown:
            raise ConfigError(f"server: unknown setting {unknown[0]!r} (known: "
                              f"{', '.join(cls._KEYS)})")
        values: dict[str, Any] = {}
        for key, attr in cls._KEYS.items():
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"server: {key} must be a whole number")
            values[attr] = value
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

    @property
    def steppath(self) -> Path:
        """``$STEPPATH`` as ca.json's location implies (``<steppath>/config/ca.json``)."""
        return self.path.resolve().parent.parent

    @property
    def provisioners(self) -> list[dict[str, Any]]:
        return list(self.authority.get("provisioners") or [])

    @classmethod
    def load(cls, path: str | Path) -> Config:
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
        return cls.from_json(raw, path=path)

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, path: Path) -> Config:
        if not isinstance(raw, dict):
            raise ConfigError("ca.json must hold a JSON object")
        base = path.resolve().parent.parent

        def resolve(value: str) -> Path:
            p = Path(os.path.expanduser(value))
            return p if p.is_absolute() else base / p

        roots = raw.get("root")
        if isinstance(roots, str):
            roots = [roots]
        if not roots:
            raise ConfigError("ca.json: 'root' is required")
        for required in ("crt", "key", "address"):
            if not raw.get(required):
                raise ConfigError(f"ca.json: '{required}' is required")
        split_address(raw["address"])
        if raw.get("insecureAddress"):
            split_address(raw["insecureAddress"])
        dns_names = _dns_names(raw.get("dnsNames") or ["localhost", "127.0.0.1", "::1"])
        authority = raw.get("authority")
        if authority is None:
            # step-ca 0.19 fills in an empty block and serves a CA that can issue nothing
            raise ConfigError("ca.json: 'authority' is required: the block that lists the "
                              "provisioners")
        if not isinstance(authority, dict):
            raise ConfigError("ca.json: 'authority' must be an object")
        common_name = raw.get("commonName") or "Step Online CA"
        _check_common_name("commonName", common_name)
        template = authority.get("template") or {}
        if isinstance(template, dict) and template.get("commonName"):
            _check_common_name("authority.template.commonName", template["commonName"])
        db = raw.get("db")
        if db is not None and not isinstance(db, dict):
            raise ConfigError("ca.json: 'db' must be an object")
        key = str(raw["key"])
        return cls(
            path=path,
            raw=raw,
            roots=tuple(resolve(r) for r in roots),
            federated_roots=tuple(resolve(r) for r in raw.get("federatedRoots") or ()),
            crt=resolve(raw["crt"]),
            key=key if "://" in key or ":" in key.split("/")[0] else str(resolve(key)),
            address=raw["address"],
            insecure_address=raw.get("insecureAddress") or "",
            dns_names=dns_names,
            db=db,
            kms=raw.get("kms"),
            authority=authority,
            tls=TLSOptions.from_json(raw.get("tls")),
            password=raw.get("password"),
            common_name=common_name,
            server=ServerOptions.from_json(raw.get("server")),
            crl=CRLOptions.from_json(raw.get("crl"), dns_names=dns_names),
            ocsp=OCSPOptions.from_json(raw.get("ocsp"), dns_names=dns_names,
                                       address=raw["address"],
                                       insecure_address=raw.get("insecureAddress") or ""),
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
