"""``stepca.remote_keys`` against real HTTP servers on 127.0.0.1, and in the real ``step-ca``
(a test-only provisioner plugin, tests/remote_keys_plugin, whose keys come from a JWKS URL):
a key endpoint that holds its answer leaves ``GET /health`` of the same worker answering."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from stepca.jose import jwk_from_key, sign_jwt
from stepca.remote_keys import (NotReady, OpenIDProviderKeys, RemoteDocument, RemoteKeySet,
                                cache_lifetime, parse_json_object, parse_openid_configuration,
                                parse_pem_certificates)
from stepca.testing import make_csr
from stepca.testing.http import running_ca
from stepca.testing.process import free_port, wait_for

PLUGIN = Path(__file__).parent / "remote_keys_plugin"
HOLD_SECONDS = 10  # the slow endpoint answers after this, unless the test releases it first


class KeyServer:
    """A JWKS endpoint on 127.0.0.1: its document and headers can change between requests, and
    ``hold`` makes it keep each request open until ``release`` (or HOLD_SECONDS). It is an
    OpenID provider too: ``discovery_url`` answers ``discovery`` (its ``jwks_uri`` the JWKS)."""

    def __init__(self, port: int = 0) -> None:
        self.keys = {"k1": ec.generate_private_key(ec.SECP256R1())}
        self.headers: dict[str, str] = {"Cache-Control": "public, max-age=3600"}
        self.hits = 0
        self.hold = False
        self.discovery: dict[str, Any] = {}
        self.received = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                server.received.set()
                if self.path == "/elsewhere":
                    self.send_response(302)
                    self.send_header("Location", "ftp://127.0.0.1/jwks")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.hold:
                    server.release.wait(HOLD_SECONDS)
                document = (server.discovery if self.path.endswith("/openid-configuration")
                            else server.jwks())
                body = json.dumps(document).encode()
                self.send_response(200)
                for name, value in {**server.headers, "Content-Type": "application/json",
                                    "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self.discovery_url = self.url.replace("/jwks", "/.well-known/openid-configuration")
        self.discovery = {"issuer": "https://issuer.example/tenant/", "jwks_uri": self.url}
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwk_from_key(key, kid=kid, alg="ES256")
                         for kid, key in self.keys.items()]}

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


@pytest.fixture
def documents() -> Iterator[list[RemoteDocument[Any]]]:
    started: list[RemoteDocument[Any]] = []
    yield started
    for document in started:
        document.stop()


def test_fetches_at_start_and_looks_keys_up(key_server: KeyServer,
                                            documents: list[RemoteDocument[Any]]) -> None:
    keys = RemoteKeySet(key_server.url, name="test")
    documents.append(keys)
    with pytest.raises(NotReady, match="not fetched yet"):
        keys.get()
    keys.start()
    assert keys.wait_fetched(1, timeout=30)
    assert keys.ready and keys.reason is None
    assert keys.key("k1").public_numbers() == key_server.keys["k1"].public_key().public_numbers()


def test_caching_headers_set_the_next_refresh(key_server: KeyServer,
                                              documents: list[RemoteDocument[Any]]) -> None:
    keys = RemoteKeySet(key_server.url, name="test", min_refresh=60, max_refresh=7200)
    documents.append(keys)
    keys.start()
    assert keys.wait_fetched(1, timeout=30)
    assert keys.next_refresh == 3600  # max-age
    assert keys._refresh_delay(cache_lifetime({"Cache-Control": "max-age=5"})) == 60  # floor
    assert keys._refresh_delay(cache_lifetime({"Cache-Control": "max-age=99999"})) == 7200
    assert keys._refresh_delay(None) == keys.default_refresh


def test_a_short_max_age_refreshes_on_its_own(key_server: KeyServer,
                                              documents: list[RemoteDocument[Any]]) -> None:
    key_server.headers = {"Cache-Control": "max-age=0"}
    keys = RemoteKeySet(key_server.url, name="test", min_refresh=0.05, default_refresh=0.05,
                        max_refresh=0.05)
    documents.append(keys)
    keys.start()
    assert keys.wait_fetched(3, timeout=30)
    assert key_server.hits >= 3


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Cache-Control": "public, max-age=300"}, 300.0),
    ({"Cache-Control": "no-cache, max-age=300"}, 0.0),
    ({"Cache-Control": "no-store"}, 0.0),
    ({"Expires": "Sun, 06 Dec 2026 12:10:00 GMT", "Date": "Sun, 06 Dec 2026 12:00:00 GMT"},
     600.0),
    ({"Expires": "0"}, 0.0),
    ({"Cache-Control": "max-age=60", "Expires": "Sun, 06 Dec 2026 12:10:00 GMT"}, 60.0),
    ({}, None),
])
def test_cache_lifetime(headers: dict[str, str], seconds: float | None) -> None:
    assert cache_lifetime(headers) == seconds


def test_an_unknown_kid_asks_for_one_rate_limited_refresh(
        key_server: KeyServer, documents: list[RemoteDocument[Any]]) -> None:
    keys = RemoteKeySet(key_server.url, name="test", on_demand_interval=3600)
    documents.append(keys)
    keys.start()
    assert keys.wait_fetched(1, timeout=30)
    key_server.keys["k2"] = ec.generate_private_key(ec.SECP256R1())  # the issuer rotated
    with pytest.raises(KeyError, match="no key 'k2'"):
        keys.key("k2")  # refused at once; the refresh runs in the background
    assert keys.wait_fetched(2, timeout=30)
    assert keys.key("k2") is not None
    with pytest.raises(KeyError):
        keys.key("forged")
    assert keys.refresh_soon() is False  # the hour's one on-demand refresh was spent
    assert keys.fetches == 2 and key_server.hits == 2


def test_an_endpoint_down_at_start_is_not_ready_with_a_reason_then_recovers(
        documents: list[RemoteDocument[Any]], caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    keys = RemoteKeySet(f"http://127.0.0.1:{port}/jwks", name="provisioner 'down'",
                        retry_after=0.05, min_refresh=0.2)
    documents.append(keys)
    with caplog.at_level(logging.WARNING, logger="stepca.remote_keys"):
        keys.start()
        assert keys.wait_fetched(1, timeout=30)
    with pytest.raises(NotReady) as refused:
        keys.key("k1")
    reason = str(refused.value)
    assert reason.startswith(f"provisioner 'down': cannot fetch http://127.0.0.1:{port}/jwks: ")
    assert "refused" in reason.lower()
    assert reason in caplog.messages
    server = KeyServer(port)
    try:
        wait_for(lambda: keys.ready, "the key set to recover", timeout=30)
        assert keys.key("k1") is not None and keys.reason is None
    finally:
        server.close()


def test_bounded_body_and_bad_documents_are_reasons(key_server: KeyServer,
                                                    documents: list[RemoteDocument[Any]]) -> None:
    small = RemoteKeySet(key_server.url, name="small", max_bytes=20)
    pem = RemoteDocument(key_server.url, parse_pem_certificates, name="pem")
    documents += [small, pem]
    for document in documents:
        document.start()
        assert document.wait_fetched(1, timeout=30)
    with pytest.raises(NotReady, match="larger than 20 bytes"):
        small.get()
    with pytest.raises(NotReady, match="no PEM certificates"):
        pem.get()
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_json_object(b"[1]")
    elsewhere = RemoteKeySet(key_server.url.replace("/jwks", "/elsewhere"), name="redirected")
    documents.append(elsewhere)
    elsewhere.start()
    assert elsewhere.wait_fetched(1, timeout=30)
    with pytest.raises(NotReady, match="refused a redirect to 'ftp://127.0.0.1/jwks'"):
        elsewhere.get()
    with pytest.raises(ValueError, match="not an http"):
        RemoteDocument("file:///etc/passwd", parse_json_object, name="local")


# -- OpenID providers: discovery, then keys --------------------------------------------------------

def test_an_openid_provider_is_discovered_then_its_keys_fetched(
        key_server: KeyServer, documents: list[RemoteDocument[Any]]) -> None:
    provider = OpenIDProviderKeys(key_server.discovery_url, name="provider",
                                  on_demand_interval=3600)
    with pytest.raises(NotReady, match="not fetched yet"):
        provider.key("k1")
    provider.start()
    assert provider.wait_fetched(timeout=30) and provider.ready
    assert provider.keys is not None
    documents += [provider.discovery, provider.keys]
    assert provider.issuer == "https://issuer.example/tenant/"
    assert provider.key("k1").public_numbers() == \
        key_server.keys["k1"].public_key().public_numbers()
    assert key_server.hits == 2  # the discovery document, then the key set; no request waited
    key_server.keys["k2"] = ec.generate_private_key(ec.SECP256R1())  # the provider rotated
    with pytest.raises(KeyError, match="no key 'k2'"):
        provider.key("k2")  # refused at once; the keys are refreshed in the background
    assert provider.keys.wait_fetched(2, timeout=30)
    assert provider.key("k2") is not None
    with pytest.raises(KeyError):
        provider.key("forged")
    assert provider.keys.refresh_soon() is False  # one on-demand refresh per interval
    assert key_server.hits == 3


def test_an_openid_provider_down_at_start_says_why(
        key_server: KeyServer, documents: list[RemoteDocument[Any]]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    provider = OpenIDProviderKeys(f"{down}/.well-known/openid-configuration", name="p")
    documents.append(provider.discovery)
    provider.start()
    assert provider.wait_fetched(timeout=30) and not provider.ready
    with pytest.raises(NotReady, match=f"^p: cannot fetch {down}/.well-known/openid-config"):
        provider.issuer
    assert provider.keys is None
    # discovered, but its key set cannot be fetched: the reason names the key set
    key_server.discovery["jwks_uri"] = f"{down}/keys"
    provider = OpenIDProviderKeys(key_server.discovery_url, name="p")
    provider.start()
    assert provider.wait_fetched(timeout=30) and provider.keys is not None
    documents += [provider.discovery, provider.keys]
    for read in (lambda: provider.issuer, lambda: provider.key("k1")):
        with pytest.raises(NotReady, match=f"^p: cannot fetch {down}/keys: "):
            read()


def test_an_openid_discovery_document_must_name_its_issuer_and_keys(
        key_server: KeyServer, documents: list[RemoteDocument[Any]]) -> None:
    for document, says in (({"jwks_uri": "https://k.example"}, "no 'issuer'"),
                           ({"issuer": "i", "jwks_uri": "file:///etc/passwd"},
                            "http(s) 'jwks_uri'"),
                           ({"issuer": "i"}, "http(s) 'jwks_uri'")):
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_openid_configuration(json.dumps(document).encode())
    # keys named over TLS are fetched over TLS
    provider = OpenIDProviderKeys("https://127.0.0.1:1/.well-known/openid-configuration",
                                  name="tls")
    with pytest.raises(ValueError, match="refused jwks_uri 'http://keys.example/'"):
        provider._discovered({"issuer": "i", "jwks_uri": "http://keys.example/"})
    assert provider.keys is None
    key_server.discovery = {"issuer": "https://issuer.example/"}
    provider = OpenIDProviderKeys(key_server.discovery_url, name="bad")
    documents.append(provider.discovery)
    provider.start()
    assert provider.wait_fetched(timeout=30)
    with pytest.raises(NotReady, match="no http\\(s\\) 'jwks_uri'"):
        provider.key("k1")


# -- in the real step-ca ---------------------------------------------------------------------------

def _install_plugin(site: Path) -> str:
    """A hand-made installation of tests/remote_keys_plugin: its .dist-info and the folder."""
    info = site / "stepca_test_remote_jwks-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stepca-test-remote-jwks\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[stepca.plugins]\nremote_jwks = stepca_test_remote_jwks\n")
    return f"{site}:{PLUGIN}"


def _get(port: int, context: Any, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("POST" if body else "GET", path, body=body,
                     headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _sign_body(key_server: KeyServer, port: int, kid: str = "k1") -> bytes:
    now = int(time.time())
    token = sign_jwt({"iss": "remote", "sub": "svc.example.com", "sans": ["svc.example.com"],
                      "aud": f"https://127.0.0.1:{port}/1.0/sign", "iat": now, "nbf": now,
                      "exp": now + 300, "jti": secrets.token_hex(16)},
                     key_server.keys[kid], alg="ES256", headers={"kid": kid})
    return json.dumps({"csr": make_csr("svc.example.com")[0], "ott": token}).encode()


def test_health_answers_while_a_key_endpoint_holds_its_answer(
        tmp_path: Path, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    key_server.hold = True
    monkeypatch.setenv("PYTHONPATH", _install_plugin(tmp_path / "site"))
    provisioner = {"type": "REMOTEJWKS", "name": "remote", "jwksURL": key_server.url}
    with running_ca(tmp_path, ca_json={"provisioners": [provisioner]}) as ca:
        # the worker fetches (the master, which forks it, runs no fetch thread), and the
        # endpoint holds that fetch open
        wait_for(lambda: key_server.hits >= 1, "the worker's fetch", timeout=30)
        status, body = _get(ca.port, ca.context(), "/health")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert not key_server.release.is_set()
        status, body = _get(ca.port, ca.context(), "/1.0/sign",
                            _sign_body(key_server, ca.port))
        assert status == 401
        assert "not fetched yet" in ca.process.log_path.read_text()
        key_server.release.set()
        wait_for(lambda: _get(ca.port, ca.context(), "/1.0/sign",
                              _sign_body(key_server, ca.port))[0] == 201,
                 "a token signed by the fetched key to be accepted", timeout=30)


def test_the_forking_master_runs_no_fetch_thread(tmp_path: Path, key_server: KeyServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a thread inside OpenSSL (loading CA certificates, a handshake) when gunicorn forks would
    # leave the worker a lock held for ever: its first TLS handshake hung until gunicorn killed
    # it 30 s later. The master builds the provisioners, the worker alone fetches.
    monkeypatch.setenv("PYTHONPATH", _install_plugin(tmp_path / "site"))
    provisioner = {"type": "REMOTEJWKS", "name": "remote", "jwksURL": key_server.url}
    with running_ca(tmp_path, ca_json={"provisioners": [provisioner]}) as ca:
        wait_for(lambda: key_server.hits >= 1, "the worker's fetch", timeout=30)
        master, *workers = ca.process.pids()
        assert workers

        def threads(pid: int) -> int:
            return len(os.listdir(f"/proc/{pid}/task"))

        # the master is one thread; the worker has its fetch thread beside its event loop
        assert threads(master) == 1
        assert threads(workers[0]) >= 2


def test_a_key_endpoint_down_at_start_leaves_the_ca_up_and_the_provisioner_refusing(
        tmp_path: Path, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", _install_plugin(tmp_path / "site"))
    down = f"http://127.0.0.1:{free_port()}/jwks"
    provisioner = {"type": "REMOTEJWKS", "name": "remote", "jwksURL": down}
    with running_ca(tmp_path, ca_json={"provisioners": [provisioner]}) as ca:
        assert _get(ca.port, ca.context(), "/health")[0] == 200
        wait_for(lambda: f"cannot fetch {down}" in ca.process.log_path.read_text(),
                 "the failed fetch to be logged", timeout=30)
        status, _ = _get(ca.port, ca.context(), "/1.0/sign", _sign_body(key_server, ca.port))
        assert status == 401
        log = ca.process.log_path.read_text()
        assert f"provisioner 'remote': cannot fetch {down}: " in log
