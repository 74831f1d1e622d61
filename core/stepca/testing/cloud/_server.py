"""The part the three metadata emulators share: a real HTTP server on 127.0.0.1 (a random port)
in a background thread, a signing key, and a log of what the clients asked."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

MAX_QUERY = 4096  # a metadata request is a short GET; anything longer is refused


@dataclass(frozen=True)
class Request:
    """What one client asked: enough for a test to see which protocol path the SDK took."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, document: Any, *headers: tuple[str, str]) -> Reply:
        return cls(status, json.dumps(document).encode(), "application/json", headers)


class SigningKey:
    """An RSA key that signs identities, its JWK (with a ``kid``) and a self-signed certificate
    (what AWS publishes for its document signatures, and what a CA's overrides can trust)."""

    def __init__(self, name: str = "metadata emulator") -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(der).hexdigest()[:40]
        self.jwk = RSAKey.import_key(self.private, {"kid": self.kid, "use": "sig", "alg": "RS256"})
        now = datetime.now(UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .sign(self.private, hashes.SHA256()))

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign_jwt(self, claims: dict[str, Any], kid: str | None = None) -> str:
        """An RS256 JWT; ``kid`` lets a forger claim another key's id."""
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        return jwt.encode(header, claims, self.jwk, algorithms=["RS256"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that stops sending does not hold a thread for ever

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        if len(parts.query) > MAX_QUERY:
            return self._send(Reply(414, b"request too long\n"))
        if (self.headers.get("Content-Length", "0").strip() != "0"
                or "Transfer-Encoding" in self.headers):
            # closing: the unread body must not pass for the next request
            return self._send(Reply(400, b"no body expected\n", headers=(("Connection", "close"),)))
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Request(self.command, parts.path, query,
                          {k.lower(): v for k, v in self.headers.items()})
        self.server.emulator.requests.append(request)
        self._send(self.server.emulator.answer(request))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_PUT = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the emulator's request log is the record; stderr stays quiet under pytest


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: MetadataEmulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)


class MetadataEmulator:
    """Base of the three emulators: ``with Emulator() as e:`` serves on ``e.url`` until the block
    ends. ``signer`` signs what is served; set ``forger`` to another :class:`SigningKey` and the
    identities served are signed by it instead (under the trusted key's ``kid``). ``published``
    are the keys a verifier is given (see :meth:`rotate`); ``keys_delay`` holds each answer of
    the key endpoints that long (released at once by :meth:`stop`), for a slow key server."""

    def __init__(self) -> None:
        self.signer = SigningKey(type(self).__name__)
        self.published: list[SigningKey] = [self.signer]
        self.forger: SigningKey | None = None
        self.keys_delay = 0.0
        self.requests: list[Request] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def rotate(self, keep_old: bool = True) -> SigningKey:
        """A new signing key, published at once; the old one stays published unless not
        ``keep_old`` (a verifier's cached keys then lack the new ``kid``)."""
        self.signer = SigningKey(type(self).__name__)
        self.published = [self.signer, *(self.published if keep_old else [])]
        return self.signer

    def public_jwks(self) -> dict[str, Any]:
        return KeySet([key.jwk for key in self.published]).as_dict(private=False)

    def _keys_reply(self, document: dict[str, Any], cache_control: str) -> Reply:
        if self.keys_delay:
            self._stopping.wait(self.keys_delay)
        return Reply.json(200, document, ("Cache-Control", cache_control))

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    @property
    def active_key(self) -> SigningKey:
        return self.forger or self.signer

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: what a ``*_HOST`` setting takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Self:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
