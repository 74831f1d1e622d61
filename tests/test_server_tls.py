"""The CA's own TLS listener: a certificate it issues itself, renewed before it expires,
one cached context per process, client certificates optional."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import timedelta

import pytest
from cryptography import x509

from stepca.authority import Authority
from stepca.config import Config, ConfigError, TLSOptions
from stepca.plugins import Plugins
from stepca.server import TLSContextCache, openssl_ciphers
from stepca.timeutil import utcnow
from stepca.testing.http import serving


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now


def handshake(context: ssl.SSLContext, root: x509.Certificate,
              client_chain: tuple[str, str] | None = None,
              verify: bool = True,
              server_hostname: str | None = "localhost") -> tuple[x509.Certificate, dict | None]:
    from cryptography.hazmat.primitives import serialization

    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context(cadata=root.public_bytes(
        serialization.Encoding.PEM).decode())
    if not verify:  # the test's clock runs ahead of the real one
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
    if client_chain:
        client.load_cert_chain(*client_chain)
    with socket.create_connection(listener.getsockname()) as raw, \
            client.wrap_socket(raw, server_hostname=server_hostname) as tls:
        der = tls.getpeercert(binary_form=True)
        assert tls.recv(2) == b"ok"
    thread.join(10)
    listener.close()
    return x509.load_der_x509_certificate(der), seen.get("peer")


@pytest.fixture
def clocked(stepca_pki, tmp_path):
    clock = Clock()
    authority = Authority(Config.load(stepca_pki.config(tmp_path)), plugins=Plugins.load(),
                          password=stepca_pki.password, clock=clock)
    yield authority, clock
    authority.close()


def test_server_certificate_and_renewal(stepca_pki, clocked):
    authority, clock = clocked
    cache = TLSContextCache(authority)
    first, peer = handshake(cache.get(), stepca_pki.root)
    assert peer == {} or peer is None  # no client certificate was required
    assert first.subject.rfc4514_string() == "CN=Step Online CA"
    san = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert first.not_valid_after_utc - first.not_valid_before_utc == timedelta(hours=24,
                                                                              minutes=1)
    assert cache.get() is cache.get()  # built once, not per connection

    clock.now += timedelta(hours=12)
    same, _ = handshake(cache.get(), stepca_pki.root, verify=False)
    assert same.serial_number == first.serial_number

    clock.now += timedelta(hours=5)  # past two thirds of the lifetime
    renewed, _ = handshake(cache.get(), stepca_pki.root, verify=False)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_before_utc > first.not_valid_before_utc


def test_client_certificate_is_verified_when_given(stepca_pki, clocked, tmp_path):
    from stepca.testing import TestCA, make_csr, make_token
    from stepca.x509util import encrypt_private_key

    authority, _ = clocked
    ca = TestCA(stepca_pki.config(tmp_path / "issuer"))
    csr, key = make_csr("client.example.com")
    chain = ca.sign(csr, make_token(stepca_pki, "client.example.com")).json["certChain"]
    ca.close()
    (tmp_path / "client.crt").write_text("".join(chain))
    (tmp_path / "client.key").write_bytes(encrypt_private_key(key, None))
    _, peer = handshake(TLSContextCache(authority).get(), stepca_pki.root,
                        (str(tmp_path / "client.crt"), str(tmp_path / "client.key")))
    assert dict(x[0] for x in peer["subject"])["commonName"] == "client.example.com"


def test_cipher_suites_are_checked():
    assert openssl_ciphers(TLSOptions()) == ("ECDHE-ECDSA-CHACHA20-POLY1305:"
                                            "ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ConfigError, match="unsupported cipher suite 'TLS_RSA_WITH_RC4_128_SHA'"):
        openssl_ciphers(TLSOptions(cipher_suites=("TLS_RSA_WITH_RC4_128_SHA",)))


@pytest.mark.parametrize("sni", ["localhost", None], ids=["with-sni", "without-sni"])
def test_the_server_asks_for_the_current_context_at_each_handshake(stepca_pki, clocked, sni):
    # stepca.httpserver asks the cache for a context per connection, so a renewed certificate
    # reaches new connections.
    authority, clock = clocked
    cache = TLSContextCache(authority)
    with serving(ssl_context=cache.get) as server:
        first = served_certificate(server.port, stepca_pki.root, sni)
        clock.now += timedelta(hours=17)  # past two thirds of the lifetime
        renewed = served_certificate(server.port, stepca_pki.root, sni)
    assert renewed.serial_number != first.serial_number
    current, _ = handshake(cache.get(), stepca_pki.root, verify=False)
    assert renewed.serial_number == current.serial_number


def served_certificate(port: int, root: x509.Certificate, sni: str | None) -> x509.Certificate:
    client = ssl.create_default_context()
    client.check_hostname = False  # the test's clock runs ahead of the real one
    client.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            client.wrap_socket(raw, server_hostname=sni) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(1024).startswith(b"HTTP/1.1 200 OK")
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
