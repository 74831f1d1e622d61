"""A stand-in for Google on 127.0.0.1: its JWKS (``/oauth2/v3/certs``) and a Compute Engine
metadata server's identity endpoint, signing with a test RSA key. google-auth is pointed at it
with ``GCE_METADATA_HOST``, set here before anything imports google-auth (which reads it once),
so no test can reach a real metadata address."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "google-test-key-1"
ACCOUNT = "/computeMetadata/v1/instance/service-accounts/default/"


class GoogleStandIn:
    """The test key, the JWKS it publishes and the instance whose identity it signs."""

    kid = KID

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.instance: dict[str, Any] = {}
        self.account: dict[str, Any] = {}
        self.identity_requests: list[dict[str, list[str]]] = []
        self.identity_status = 200
        self.reset()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.certs_url = f"http://{self.host}/oauth2/v3/certs"

    def reset(self) -> None:
        self.instance = {"instance_id": "5580436311563912345", "instance_name": "web-1",
                         "project_id": "stepca-test", "project_number": 424242,
                         "zone": "europe-west1-b",
                         "instance_creation_timestamp": int(time.time()) - 600}
        self.account = {"sub": "104270000000000000001", "azp": "104270000000000000001",
                        "email": "web@stepca-test.iam.gserviceaccount.com",
                        "email_verified": True}
        self.identity_requests.clear()
        self.identity_status = 200

    def jwks(self) -> dict[str, Any]:
        from stepca.jose import jwk_from_key

        public = jwk_from_key(self.key.public_key())
        return {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def token(self, audience: str, *, key: Any = None, lifetime: int = 3600,
              issued: float | None = None, **changes: Any) -> str:
        """An identity token as the metadata server gives it (``format=full``); each keyword
        replaces a claim, or one of ``google.compute_engine`` when it names one."""
        from stepca.jose import sign_jwt

        now = int(issued if issued is not None else time.time())
        engine = dict(self.instance)
        claims: dict[str, Any] = {"iss": "https://accounts.google.com", "aud": audience,
                                  "iat": now, "exp": now + lifetime, **self.account}
        for name, value in changes.items():
            target = engine if name in engine else claims
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
        claims["google"] = {"compute_engine": engine}
        return sign_jwt(claims, key or self.key, alg="RS256", headers={"kid": KID})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        google = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/oauth2/v3/certs":
                    self._answer(200, json.dumps(google.jwks()).encode(), "application/json")
                elif not url.path.startswith(ACCOUNT):
                    self._answer(404, b"not found", "text/plain")
                elif self.headers.get("Metadata-Flavor") != "Google":
                    self._answer(403, b"Missing Metadata-Flavor:Google header", "text/plain")
                elif url.path == ACCOUNT and parse_qs(url.query).get("recursive") == ["true"]:
                    # what google-auth reads first: the default service account
                    account = {"aliases": ["default"], "email": google.account["email"],
                               "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
                    self._answer(200, json.dumps(account).encode(), "application/json")
                elif url.path == f"{ACCOUNT}identity":
                    query = parse_qs(url.query)
                    google.identity_requests.append(query)
                    if query.get("format") != ["full"] or not query.get("audience"):
                        self._answer(400, b"format=full and an audience, please", "text/plain")
                        return
                    if google.identity_status != 200:
                        self._answer(google.identity_status, b"no service account\nhere",
                                     "text/plain")
                        return
                    token = google.token(query["audience"][0]).encode()
                    self._answer(200, token, "application/text")
                else:
                    self._answer(404, b"not found", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Metadata-Flavor", "Google")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def serve(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_GOOGLE = GoogleStandIn()
# before google-auth is imported anywhere: it reads these once, at import
os.environ["GCE_METADATA_HOST"] = _GOOGLE.host
os.environ["GCE_METADATA_IP"] = _GOOGLE.host
os.environ["GCE_METADATA_MTLS_MODE"] = "none"


@pytest.fixture(scope="session")
def google_server() -> Iterator[GoogleStandIn]:
    _GOOGLE.serve()
    yield _GOOGLE
    _GOOGLE.close()


@pytest.fixture
def google(google_server: GoogleStandIn) -> Iterator[GoogleStandIn]:
    google_server.reset()
    yield google_server
    google_server.reset()
