"""The CLI's one HTTP client (decision 0019): the standard library's ``urllib.request`` with
proxies from the environment, a deadline on connecting and on reading, bodies read only up to
a limit, and failures told in one line as Go's ``net/http`` tells them.

Import this module lazily, from the functions that talk to a server: ``step`` commands that
never do should not pay for it at start-up."""

from __future__ import annotations

import _ssl
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from stepca.bounded_read import read_bounded
from stepca_cli.errors import StepError

CONNECT_TIMEOUT = 15.0  # TCP, the proxy's CONNECT and the TLS handshake
READ_TIMEOUT = 30.0  # the answer: each wait for data, and the whole body
# OpenSSL's verification codes (X509_V_ERR_*) that Go words differently
_UNKNOWN_AUTHORITY = {2, 18, 19, 20, 21}
_NOT_YET_VALID, _EXPIRED = 9, 10
_NAME_MISMATCH = {62, 64}  # host name, IP address


class TransportError(StepError):
    """The request did not get an answer: ``client GET <url> failed: <Go's reason>``."""

    def __init__(self, method: str, url: str, reason: str, *, untrusted: bool = False) -> None:
        super().__init__(f"client {method} {url} failed: {reason}")
        self.reason = reason
        self.untrusted = untrusted  # the server's certificate chain did not verify


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    url: str
    headers: Message
    body: bytes


@dataclass(frozen=True)
class _PathBuilding:
    """What a connection needs to verify the server's chain as Go does, when OpenSSL could not:
    the roots, and a context like the connection's that leaves the chain to us."""

    roots: tuple[x509.Certificate, ...]
    context: ssl.SSLContext


def tls_context(*, cafile: str | None = None, cadata: str | None = None,
                insecure: bool = False) -> ssl.SSLContext:
    """Verify servers with ``cafile``/``cadata`` only when given, the system's roots otherwise;
    ``insecure`` verifies nothing (``step ca bootstrap`` before it knows the root). Load a
    client certificate with ``load_client_certificate``."""
    context = _client_context(cafile=cafile, cadata=cadata, verify=not insecure)
    if not insecure and (cafile or cadata):
        from stepca.x509util import load_certificates

        try:
            pem = Path(cafile).read_bytes() if cafile else str(cadata).encode()
            roots = tuple(load_certificates(pem))
        except (OSError, ValueError):
            roots = ()  # what the context loaded is all there is
        relaxed = _client_context(verify=False)
        context.stepca_path_building = _PathBuilding(roots, relaxed)  # type: ignore[attr-defined]
    return context


def _client_context(*, cafile: str | None = None, cadata: str | None = None,
                    verify: bool = True) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context(cafile=cafile, cadata=cadata)
    else:  # verifies nothing, so it loads no roots (the system's cost ~20 ms a context)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def load_client_certificate(context: ssl.SSLContext, certfile: str, keyfile: str,
                            password: Any = None) -> None:
    """Present this certificate for mutual TLS, also on a path-building retry."""
    context.load_cert_chain(certfile, keyfile, password=password)
    fallback = getattr(context, "stepca_path_building", None)
    if fallback is not None:
        fallback.context.load_cert_chain(certfile, keyfile, password=password)


def request(method: str, url: str, *, limit: int, context: ssl.SSLContext | None = None,
            body: bytes | None = None, headers: dict[str, str] | None = None,
            connect_timeout: float = CONNECT_TIMEOUT,
            read_timeout: float = READ_TIMEOUT) -> Response:
    """One request; any status is an answer. Raises ``TransportError`` when there is none, or
    when the body is longer than ``limit`` bytes (the rest is never read)."""
    opener = _opener(context or tls_context(), read_timeout)
    outgoing = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        try:
            answer = opener.open(outgoing, timeout=connect_timeout)
        except urllib.error.HTTPError as error_status:  # 4xx and 5xx are answers too
            answer = error_status
        with answer:
            data = read_bounded(answer, limit, time.monotonic() + read_timeout)
    except urllib.error.URLError as exc:
        raise _failure(method, url, exc.reason) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _failure(method, url, exc) from None
    return Response(answer.status, answer.reason or "", answer.url, answer.headers, data)


# -- failures in Go's words ------------------------------------------------------------------------

class _Failure(OSError):
    """A failure already worded; an ``OSError`` so that urllib closes the connection."""

    def __init__(self, reason: str, *, untrusted: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.untrusted = reason, untrusted

    def __str__(self) -> str:
        return self.reason


def _failure(method: str, url: str, exc: BaseException | str) -> TransportError:
    if isinstance(exc, _Failure):
        return TransportError(method, url, exc.reason, untrusted=exc.untrusted)
    if isinstance(exc, TimeoutError):
        return TransportError(method, url, "read: i/o timeout")
    if isinstance(exc, http.client.RemoteDisconnected):
        return TransportError(method, url, "EOF")
    if isinstance(exc, OSError) and exc.strerror:
        return TransportError(method, url, _lower_first(exc.strerror))
    return TransportError(method, url, str(exc) or type(exc).__name__)


def _dial_failure(exc: OSError, host: str, port: int, *, proxy: bool) -> _Failure:
    prefix = "proxyconnect tcp: " if proxy else ""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        unknown = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
        cause = "no such host" if unknown else _lower_first(exc.strerror or str(exc))
        return _Failure(f"{prefix}dial tcp: lookup {host}: {cause}")
    if isinstance(exc, TimeoutError):
        return _Failure(f"{prefix}dial tcp {where}: i/o timeout")
    if isinstance(exc, ConnectionRefusedError):
        return _Failure(f"{prefix}dial tcp {where}: connect: connection refused")
    if exc.strerror:
        return _Failure(f"{prefix}dial tcp {where}: connect: {_lower_first(exc.strerror)}")
    return _Failure(f"{prefix}{exc}")  # the proxy refused the tunnel


def _verify_failure(exc: ssl.SSLCertVerificationError, name: str,
                    leaf: x509.Certificate | None) -> _Failure:
    code = exc.verify_code
    if code in _NAME_MISMATCH and leaf is not None:
        reason = _name_mismatch(leaf, name)
    elif code in _UNKNOWN_AUTHORITY:
        reason = "x509: certificate signed by unknown authority"
    elif code in (_NOT_YET_VALID, _EXPIRED):
        reason = "x509: certificate has expired or is not yet valid"
    else:
        reason = f"x509: {_lower_first(exc.verify_message or str(exc))}"
    return _Failure(f"tls: failed to verify certificate: {reason}",
                    untrusted=code not in _NAME_MISMATCH)


def _name_mismatch(leaf: x509.Certificate, name: str) -> str:
    """Go's x509.HostnameError: the names the certificate is valid for, and the one asked."""
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        valid = ", ".join(sans.get_values_for_type(x509.DNSName)) if sans else ""
    else:
        addresses = sans.get_values_for_type(x509.IPAddress) if sans else []
        if not addresses:
            return f"x509: cannot validate certificate for {name} because it doesn't contain " \
                   "any IP SANs"
        valid = ", ".join(str(a) for a in addresses)
    if not valid:
        common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if sans is None and common and common[0].value == name:
            return "x509: certificate relies on legacy Common Name field, use SANs instead"
        return f"x509: certificate is not valid for any names, but wanted to match {name}"
    return f"x509: certificate is valid for {valid}, not {name}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# -- urllib with deadlines, Go's proxy rules and Go's words ----------------------------------------

class _Connection(http.client.HTTPConnection):
    """Connects within ``timeout`` (through the proxy's tunnel when there is one); then each
    read waits at most ``read_timeout``."""

    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        try:
            http.client.HTTPConnection.connect(self)
        except OSError as exc:
            raise _dial_failure(exc, self.host, self.port, proxy=bool(self._tunnel_host)) \
                from None
        self._secure()
        self.sock.settimeout(self.read_timeout)

    def _secure(self) -> None:
        """Plain HTTP: nothing to do."""


class _TLSConnection(_Connection, http.client.HTTPSConnection):
    def _secure(self) -> None:
        name = self._tunnel_host or self.host
        tls = self._context.wrap_socket(self.sock, server_hostname=name,
                                        do_handshake_on_connect=False)
        self.sock = tls
        try:
            tls.do_handshake()
        except ssl.SSLCertVerificationError as exc:
            presented = _presented_chain(tls)
            fallback = getattr(self._context, "stepca_path_building", None)
            if (exc.verify_code in _UNKNOWN_AUTHORITY and fallback is not None
                    and _chain_verifies(presented, name, fallback.roots)):
                tls.close()
                if self._secure_by_path_building(name, fallback):
                    return
            raise _verify_failure(exc, name, presented[0] if presented else None) from None
        except ssl.SSLError as exc:
            if exc.reason == "WRONG_VERSION_NUMBER":  # what a plain-HTTP listener causes
                raise _Failure("http: server gave HTTP response to HTTPS client") from None
            raise _Failure(f"tls: {(exc.reason or str(exc)).lower().replace('_', ' ')}") from None
        except TimeoutError:
            raise _Failure("net/http: TLS handshake timeout") from None


    def _secure_by_path_building(self, name: str, fallback: _PathBuilding) -> bool:
        """Go's verifier tries every issuer the server sent; OpenSSL follows the first that
        matches by name. So a chain with a cross-signed intermediate beside its twin (a root
        rotation) fails here where step succeeds. Connect again, leave the chain to us, and
        verify it with cryptography's path builder before a byte is sent: True if it chains
        to one of the roots and names ``name``."""
        try:
            http.client.HTTPConnection.connect(self)
            tls = fallback.context.wrap_socket(self.sock, server_hostname=name)
        except (OSError, ssl.SSLError):
            return False
        if not _chain_verifies(_presented_chain(tls), name, fallback.roots):
            tls.close()
            return False
        self.sock = tls
        return True


def _chain_verifies(chain: list[x509.Certificate], name: str,
                    roots: tuple[x509.Certificate, ...]) -> bool:
    """``chain`` (leaf first) leads to one of ``roots`` by some path, as Go's verifier looks
    for one, and its leaf names ``name``."""
    from cryptography.x509 import verification

    if not chain or not roots:
        return False
    try:
        subject: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    verifier = verification.PolicyBuilder().store(
        verification.Store(list(roots))).build_server_verifier(subject)
    try:
        verifier.verify(chain[0], chain[1:])
    except verification.VerificationError:
        return False
    return True


def _presented_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the server sent, leaf first: Python 3.13 has the public
    ``get_unverified_chain``, 3.11 and 3.12 the same on the private ``_sslobj``."""
    getter = getattr(tls, "get_unverified_chain", None) or getattr(
        getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    chain = getter() if getter is not None else None
    return [x509.load_der_x509_certificate(
        item if isinstance(item, bytes) else item.public_bytes(_ssl.ENCODING_DER))
        for item in chain or ()]


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_Connection, req, read_timeout=self.read_timeout)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext, read_timeout: float) -> None:
        super().__init__(context=context)
        self.read_timeout = read_timeout

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_TLSConnection, req, context=self._context,
                            read_timeout=self.read_timeout)


class _ProxyHandler(urllib.request.ProxyHandler):
    """``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY`` as urllib reads them, and Go's rule
    that ``localhost`` and loopback addresses are never proxied."""

    def proxy_open(self, req: urllib.request.Request, proxy: str, type: str) -> Any:
        if is_loopback(urlsplit(f"//{req.host}").hostname or ""):
            return None
        return super().proxy_open(req, proxy, type)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: never proxied, and where ``step oauth`` takes a
    plain-HTTP provider."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(context: ssl.SSLContext, read_timeout: float) -> urllib.request.OpenerDirector:
    """urllib's default chain without the ftp, file and data handlers."""
    opener = urllib.request.OpenerDirector()
    for handler in (_ProxyHandler(), _HTTPHandler(read_timeout),
                    _HTTPSHandler(context, read_timeout), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
                    urllib.request.UnknownHandler()):
        opener.add_handler(handler)
    return opener
