"""Keys and certificates a plugin needs from the network (a JWKS, an OpenID discovery document,
PEM certificates), fetched in a background thread and never while a request waits.

The CA worker is one event loop (``stepca.worker``): a blocking fetch inside a request would
stall every connection of that worker. So a ``RemoteDocument`` fetches in its own daemon thread
from ``start()`` on, refreshes when the HTTP caching headers say (``Cache-Control: max-age``,
``Expires``; clamped between a floor and a ceiling), and a request only reads the last document
fetched. Until a first fetch succeeds the document is "not ready" and ``get()`` raises
``NotReady`` with the reason (also logged), so the consumer refuses; the CA still starts. An
unknown ``kid`` asks for one refresh, at most once per ``on_demand_interval``, and the request
is refused at once rather than waiting for it (docs/decisions/0020).

``step-ca`` builds its provisioners in the gunicorn master and forks its workers: a thread does
not survive ``fork``, so every started document starts again in each child, at once, with the
last document the parent had (``os.register_at_fork``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from stepca.bounded_read import read_bounded
from stepca.logs import escape

__all__ = ["NotReady", "OpenIDProviderKeys", "RemoteDocument", "RemoteKeySet",
           "parse_json_object", "parse_jwks", "parse_openid_configuration",
           "parse_pem_certificates"]

T = TypeVar("T")
log = logging.getLogger("stepca.remote_keys")

MAX_BYTES = 1 << 20  # a JWKS or a discovery document is a few kilobytes


class NotReady(Exception):
    """The document was never fetched; ``str(exc)`` says why, in one line."""


@dataclass(frozen=True)
class _Fetched(Generic[T]):
    value: T
    max_age: float | None  # what the caching headers allow, before the floor and ceiling


class RemoteDocument(Generic[T]):
    """One URL's document, parsed by ``parse`` (which raises ``ValueError`` on bad content).

    ``name`` says whose document it is in messages (``provisioner 'google'``). Intervals are
    seconds: a refresh happens after the headers' lifetime clamped to ``[min_refresh,
    max_refresh]`` (``default_refresh`` when they say nothing); a failed fetch is retried after
    ``retry_after``, doubling up to ``min_refresh``, and keeps the last good document.
    ``timeout`` bounds each fetch as a whole, ``max_bytes`` its body. ``on_fetched`` is called
    in the background thread with each document parsed, before it is served; if it raises, the
    fetch counts as failed (a document that leads somewhere unacceptable is no document)."""

    def __init__(self, url: str, parse: Callable[[bytes], T], *, name: str,
                 min_refresh: float = 60.0, max_refresh: float = 86400.0,
                 default_refresh: float = 3600.0, retry_after: float = 5.0,
                 on_demand_interval: float = 60.0, timeout: float = 10.0,
                 max_bytes: int = MAX_BYTES, ssl_context: ssl.SSLContext | None = None,
                 on_fetched: Callable[[T], None] | None = None) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"{name}: '{url}' is not an http(s) URL")
        if not 0 < min_refresh <= default_refresh <= max_refresh:
            raise ValueError(f"{name}: refresh intervals must be 0 < min <= default <= max")
        self.url, self.name, self._parse, self._on_fetched = url, name, parse, on_fetched
        self.min_refresh, self.max_refresh = min_refresh, max_refresh
        self.default_refresh, self.retry_after = default_refresh, retry_after
        self.on_demand_interval, self.timeout, self.max_bytes = (on_demand_interval, timeout,
                                                                 max_bytes)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ssl_context or ssl.create_default_context()),
            _SameOrSaferRedirects())
        self._value: T | None = None
        self._has_value = False
        self._reason = f"{name}: {url} not fetched yet"
        self._fetches = 0
        self._last_on_demand = -float("inf")
        self._next_refresh: float | None = None
        self._reset_threading()

    def _reset_threading(self) -> None:
        self._lock = threading.Lock()
        self._fetched = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- what requests call: never blocks on the network -----------------------------------------

    def start(self) -> None:
        """Start fetching in the background (again after a fork); returns at once."""
        with self._lock:
            if self._pid != os.getpid():  # forked without the at-fork hook (cannot happen)
                self._reset_threading()
            if self._thread is not None:
                return
            _STARTED.add(self)
            if os.getpid() == _forking_pid:
                return  # the processes it forks start their own (defer_to_forked_children)
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"stepca-remote {self.url}")
            self._thread.start()

    def get(self) -> T:
        """The last document fetched; ``NotReady`` with the reason when there is none."""
        with self._lock:
            if not self._has_value:
                raise NotReady(self._reason)
            return self._value  # type: ignore[return-value]

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._has_value

    @property
    def reason(self) -> str | None:
        """Why the last fetch failed (None after a success)."""
        with self._lock:
            return self._reason

    def refresh_soon(self) -> bool:
        """Ask the background thread for a refresh now, at most once per
        ``on_demand_interval``; True if this call asked."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_on_demand < self.on_demand_interval:
                return False
            self._last_on_demand = now
        self._wake.set()
        return True

    def stop(self) -> None:
        _STARTED.discard(self)
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout + 1)

    def wait_fetched(self, count: int, timeout: float) -> bool:
        """For tests: wait until ``count`` fetches (successful or not) were attempted."""
        with self._fetched:
            return self._fetched.wait_for(lambda: self._fetches >= count, timeout)

    @property
    def next_refresh(self) -> float | None:
        """Seconds the background thread waits after the last fetch (None before one)."""
        with self._lock:
            return self._next_refresh

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    # -- the background thread -------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                fetched = self._fetch()
                if self._on_fetched is not None:
                    self._on_fetched(fetched.value)
            except Exception as exc:  # whatever went wrong, the worker keeps serving
                failures += 1
                reason = f"{self.name}: cannot fetch {self.url}: {_one_line(exc)}"
                log.warning("%s", escape(reason))
                delay = min(self.retry_after * 2 ** (failures - 1), self.min_refresh)
                with self._fetched:
                    self._fetches += 1
                    self._reason, self._next_refresh = reason, delay
                    self._fetched.notify_all()
            else:
                failures = 0
                delay = self._refresh_delay(fetched.max_age)
                with self._fetched:
                    self._fetches += 1
                    self._value, self._has_value, self._reason = fetched.value, True, None
                    self._next_refresh = delay
                    self._fetched.notify_all()
            self._wake.wait(delay)

    def _refresh_delay(self, max_age: float | None) -> float:
        if max_age is None:
            return self.default_refresh
        return min(max(max_age, self.min_refresh), self.max_refresh)

    def _fetch(self) -> _Fetched[T]:
        deadline = time.monotonic() + self.timeout
        request = urllib.request.Request(self.url, headers={
            "Accept": "application/json, application/x-pem-file, */*;q=0.5",
            "User-Agent": "stepca"})
        with self._opener.open(request, timeout=self.timeout) as response:
            body = read_bounded(response, self.max_bytes, deadline)
            max_age = cache_lifetime(response.headers)
        return _Fetched(self._parse(body), max_age)


class _SameOrSaferRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects only to http(s), and never from https to plain http: keys fetched over TLS
    must not be swapped on the way."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        allowed = ("https://",) if req.full_url.startswith("https://") else ("https://",
                                                                              "http://")
        if not newurl.lower().startswith(allowed):
            raise ValueError(f"refused a redirect to '{newurl[:100]}'")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def cache_lifetime(headers: Mapping[str, str]) -> float | None:
    """Seconds a response may be reused: ``Cache-Control: max-age`` (0 for ``no-cache`` or
    ``no-store``), else ``Expires`` minus ``Date``; None when the headers say nothing usable."""
    directives = [d.strip().lower() for d in (headers.get("Cache-Control") or "").split(",")]
    for directive in directives:
        if directive in ("no-cache", "no-store"):
            return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age" and value.strip().isdigit():
            return float(value.strip())
    expires = headers.get("Expires")
    if expires:
        try:
            until = email.utils.parsedate_to_datetime(expires)
            date = headers.get("Date")
            now = email.utils.parsedate_to_datetime(date) if date else datetime.now(UTC)
            return max(0.0, (until - now).total_seconds())
        except (TypeError, ValueError):
            return 0.0  # an invalid Expires means already expired (RFC 9111 5.3)
    return None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# -- parsers ---------------------------------------------------------------------------------------

def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object (an OpenID discovery document)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def parse_jwks(data: bytes) -> dict[str, Any]:
    """A JWKS: its signing keys (``cryptography`` public keys) by ``kid``. Keys for encryption
    or without a ``kid`` are left out; a set with no usable key is refused."""
    from stepca.jose import JOSEFormatError, key_from_jwk

    keys = parse_json_object(data).get("keys")
    if not isinstance(keys, list):
        raise ValueError("a JWKS has a 'keys' array")
    found: dict[str, Any] = {}
    for entry in keys:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) \
                or entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            found[entry["kid"]] = key_from_jwk(public)
        except JOSEFormatError:
            continue  # a key type we do not know cannot have signed what we verify
    if not found:
        raise ValueError("the JWKS has no usable signing key")
    return found


def parse_openid_configuration(data: bytes) -> dict[str, Any]:
    """An OpenID provider's discovery document, with the ``issuer`` and ``jwks_uri`` (an
    http(s) URL) that a verifier of its tokens needs."""
    document = parse_json_object(data)
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError("the discovery document has no 'issuer'")
    if not isinstance(jwks_uri, str) or not jwks_uri.lower().startswith(("https://", "http://")):
        raise ValueError("the discovery document has no http(s) 'jwks_uri'")
    return document


def parse_pem_certificates(data: bytes) -> tuple[Any, ...]:
    """PEM certificates (``cryptography`` ``x509.Certificate`` objects), at least one."""
    from cryptography import x509

    try:
        certificates = tuple(x509.load_pem_x509_certificates(data))
    except ValueError as exc:
        raise ValueError(f"no PEM certificates: {exc}") from None
    return certificates


class RemoteKeySet(RemoteDocument[dict[str, Any]]):
    """A JWKS by URL, looked up by ``kid``."""

    def __init__(self, url: str, *, name: str, **options: Any) -> None:
        super().__init__(url, parse_jwks, name=name, **options)

    def key(self, kid: str) -> Any:
        """The public key named ``kid``. ``NotReady`` when the set was never fetched; for an
        unknown ``kid``, ``KeyError`` at once, after asking for one rate-limited refresh (a
        rotated key is there for the client's next try)."""
        keys = self.get()
        if kid in keys:
            return keys[kid]
        self.refresh_soon()
        raise KeyError(f"{self.name}: no key '{kid}' in {self.url}")


class OpenIDProviderKeys:
    """An OpenID provider's issuer and signing keys: its discovery document
    (``<issuer>/.well-known/openid-configuration``), then the JWKS its ``jwks_uri`` names, each a
    ``RemoteDocument`` fetching in the background (the key set starts as soon as the discovery
    document arrives, and follows it if ``jwks_uri`` changes). ``options`` are
    ``RemoteDocument``'s, for both. Until both were fetched, ``issuer`` and ``key`` raise
    ``NotReady`` with the reason."""

    def __init__(self, discovery_url: str, *, name: str, **options: Any) -> None:
        self.name, self._options = name, options
        self.keys: RemoteKeySet | None = None  # written only by the discovery thread
        self.discovery = RemoteDocument(discovery_url, parse_openid_configuration, name=name,
                                        on_fetched=self._discovered, **options)

    def start(self) -> None:
        self.discovery.start()

    def stop(self) -> None:
        self.discovery.stop()
        if self.keys is not None:
            self.keys.stop()

    @property
    def issuer(self) -> str:
        """The ``issuer`` the provider's tokens carry."""
        self._key_set()  # both documents, or NotReady
        return str(self.discovery.get()["issuer"])

    def key(self, kid: str) -> Any:
        """``RemoteKeySet.key`` of the provider's current key set: ``NotReady`` until both
        documents were fetched, ``KeyError`` for an unknown ``kid`` (after asking for one
        rate-limited refresh of the keys)."""
        return self._key_set().key(kid)

    @property
    def ready(self) -> bool:
        return self.discovery.ready and self.keys is not None and self.keys.ready

    def wait_fetched(self, timeout: float) -> bool:
        """For tests: wait until the discovery document, then the key set it names, were each
        fetched once (successfully or not); False if that took longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        if not self.discovery.wait_fetched(1, timeout):
            return False
        keys = self.keys
        return keys is None or keys.wait_fetched(1, max(0.0, deadline - time.monotonic()))

    def _key_set(self) -> RemoteKeySet:
        self.discovery.get()
        keys = self.keys
        if keys is None:  # cannot happen once the discovery document was served
            raise NotReady(f"{self.name}: no key set yet")
        keys.get()
        return keys

    def _discovered(self, configuration: dict[str, Any]) -> None:
        uri = configuration["jwks_uri"]
        if self.discovery.url.startswith("https://") and not uri.lower().startswith("https://"):
            raise ValueError(f"refused jwks_uri '{uri[:100]}': keys named over TLS must be "
                             "fetched over TLS")
        previous = self.keys
        if previous is not None and previous.url == uri:
            return
        keys = RemoteKeySet(uri, name=self.name, **self._options)
        keys.start()
        self.keys = keys
        if previous is not None:
            previous.stop()


# -- fork ------------------------------------------------------------------------------------------

_STARTED: weakref.WeakSet[RemoteDocument[Any]] = weakref.WeakSet()


_forking_pid: int | None = None


def defer_to_forked_children() -> None:
    """For a pre-forking server (step-ca's gunicorn master): documents started in this process
    fetch only in the processes it forks, each in a thread of its own, never here. A fork copies
    a lock that another thread holds, OpenSSL's own included (loading CA certificates, a TLS
    handshake), as held for ever: the child's first TLS handshake would hang. So the process
    that forks runs no fetch threads at all."""
    global _forking_pid
    _forking_pid = os.getpid()


def _restart_after_fork() -> None:
    # The child has the parent's documents but none of its threads, and a lock the parent's
    # thread held stays held: fresh locks and a thread of its own for each started document.
    for document in list(_STARTED):
        document._reset_threading()
        document.start()


os.register_at_fork(after_in_child=_restart_after_fork)
