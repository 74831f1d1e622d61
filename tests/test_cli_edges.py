"""Rough edges a new user hit, through the real ``step`` CLI against a real step-ca: one line
when the CA cannot be reached or its name does not match, proxies on every request (a real
``CONNECT`` proxy on loopback), ``--roots`` for https CRL and OCSP downloads, an empty
password file named as such, and the arrow-key provisioner list on a pseudo-terminal."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from pathlib import Path

import pytest
from cryptography import x509

from stepca.jose import encrypt_pbes2, jwk_from_key, public_jwk
from stepca.testing.process import StepCAProcess, free_port, run_step, scripts_dir
from stepca.testing.proxy import forward_proxy
from stepca.testing.terminal import Terminal
from stepca.x509util import generate_key
from stepca_cli import httpclient

pytestmark = pytest.mark.e2e

PROXIED = "ca.proxied.test"  # resolves nowhere: reachable only through the proxy


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.http_port = free_port(), free_port()
        self.password = tmp / "password.txt"
        self.password.write_text("p4ss\n")
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("STEP") and "proxy" not in k.lower()}
        self.env = {**base, "STEPPATH": str(tmp / "ca")}
        self.root = tmp / "ca" / "certs" / "root_ca.crt"

    def step(self, *args: str, check: bool = True, env: dict[str, str] | None = None):
        return run_step(*args, env={**self.env, **(env or {})}, check=check, cwd=self.tmp)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("cli-edges"))
    # a certificate for names only: no IP address, as a CA set up for "localhost"
    lab.step("ca", "init", "--name", "Edges", "--provisioner", "admin", "--dns", "localhost",
             "--dns", PROXIED, "--address", f"127.0.0.1:{lab.port}", "--password-file",
             str(lab.password))
    ca_json = lab.tmp / "ca" / "config" / "ca.json"
    config = json.loads(ca_json.read_text())
    config["insecureAddress"] = f"127.0.0.1:{lab.http_port}"
    config["crl"] = {"enabled": True, "cacheDuration": "1h"}
    config["ocsp"] = {"enabled": True}
    second = jwk_from_key(generate_key("EC"), private=True)
    config["authority"]["provisioners"].append({
        "type": "JWK", "name": "second", "key": public_jwk(second),
        "encryptedKey": encrypt_pbes2(json.dumps(second).encode(), b"p4ss")})
    ca_json.write_text(json.dumps(config, indent="\t"))
    lab.second_kid = second["kid"]
    lab.fingerprint = json.loads((lab.tmp / "ca" / "config" / "defaults.json")
                                 .read_text())["fingerprint"]
    lab.ca = StepCAProcess(ca_json, password_file=lab.password, root=lab.root, port=lab.port,
                           env=lab.env).start()
    lab.step("ca", "certificate", "leaf.localhost", "leaf.crt", "leaf.key", "--provisioner",
             "admin", "--provisioner-password-file", str(lab.password), "--ca-url",
             f"https://localhost:{lab.port}")
    yield lab
    lab.ca.stop()


def one_line(result) -> str:
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


# -- an unreachable CA, in one line ----------------------------------------------------------------

def test_refused_plain_http_and_unknown_host_are_one_line(lab):
    port = free_port()  # nothing listens there
    refused = lab.step("ca", "health", "--ca-url", f"https://127.0.0.1:{port}", "--root",
                       str(lab.root), check=False)
    assert one_line(refused) == (f"client GET https://127.0.0.1:{port}/health failed: "
                                 f"dial tcp 127.0.0.1:{port}: connect: connection refused")
    plain = lab.step("ca", "health", "--ca-url", f"https://127.0.0.1:{lab.http_port}", "--root",
                     str(lab.root), check=False)  # the plain-HTTP listener
    assert one_line(plain) == (f"client GET https://127.0.0.1:{lab.http_port}/health failed: "
                               "http: server gave HTTP response to HTTPS client")
    unknown = lab.step("ca", "health", "--ca-url", f"https://nowhere.invalid:{port}", "--root",
                       str(lab.root), check=False)
    # "no such host" where a resolver answers; its own words where none does
    assert one_line(unknown).startswith(f"client GET https://nowhere.invalid:{port}/health "
                                        "failed: dial tcp: lookup nowhere.invalid: ")


def test_a_silent_server_and_a_silent_proxy_time_out_in_one_line(monkeypatch):
    with socket.socket() as silent:  # accepts connections (the kernel does) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(httpclient.TransportError) as handshake:
            httpclient.request("GET", f"https://127.0.0.1:{port}/health", limit=1024,
                               connect_timeout=0.2)
        assert str(handshake.value) == (f"client GET https://127.0.0.1:{port}/health failed: "
                                        "net/http: TLS handshake timeout")
        with pytest.raises(httpclient.TransportError) as answer:
            httpclient.request("GET", f"http://127.0.0.1:{port}/crl", limit=1024,
                               read_timeout=0.2)
        assert answer.value.reason == "read: i/o timeout"
        for name in ("https_proxy", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        with pytest.raises(httpclient.TransportError) as tunnel:
            httpclient.request("GET", f"https://{PROXIED}:1/health", limit=1024,
                               connect_timeout=0.2)
        assert tunnel.value.reason == f"proxyconnect tcp: dial tcp 127.0.0.1:{port}: i/o timeout"


def test_a_body_over_the_limit_is_refused_while_reading(lab):
    crl = f"http://127.0.0.1:{lab.http_port}/crl"
    size = len(httpclient.request("GET", crl, limit=1 << 20).body)
    with pytest.raises(httpclient.TransportError) as too_large:
        httpclient.request("GET", crl, limit=size - 1)
    assert too_large.value.reason == f"the answer is larger than {size - 1} bytes"


def test_a_body_without_a_length_is_cut_at_the_limit():
    def answer_with_5000_bytes(server: socket.socket) -> None:
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(2)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/crl"
        thread = threading.Thread(target=answer_with_5000_bytes, args=(server,), daemon=True)
        thread.start()
        with pytest.raises(httpclient.TransportError) as too_large:
            httpclient.request("GET", url, limit=4999)
        assert too_large.value.reason == "the answer is larger than 4999 bytes"
        assert httpclient.request("GET", url, limit=5000).body == b"x" * 5000
        thread.join(timeout=10)


# -- the CA's name does not match ------------------------------------------------------------------

def test_bootstrap_to_an_address_the_certificate_does_not_name(lab, tmp_path):
    env = {"STEPPATH": str(tmp_path / "elsewhere")}
    url = f"https://127.0.0.1:{lab.port}"
    mismatch = lab.step("ca", "bootstrap", "--ca-url", url, "--fingerprint", lab.fingerprint,
                        env=env, check=False)
    assert one_line(mismatch) == (
        f"client GET {url}/health failed: tls: failed to verify certificate: x509: cannot "
        "validate certificate for 127.0.0.1 because it doesn't contain any IP SANs")
    assert not (tmp_path / "elsewhere" / "certs" / "root_ca.crt").exists()


def test_a_name_mismatch_and_an_unknown_root_through_the_proxy(lab, tmp_path):
    other = tmp_path / "other_root.crt"
    run_step("certificate", "create", "Other Root", str(other), str(tmp_path / "other.key"),
             "--profile", "root-ca", "--no-password", "--insecure", env=lab.env)
    with forward_proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url}
        url = f"https://other.proxied.test:{lab.port}"
        mismatch = lab.step("ca", "health", "--ca-url", url, "--root", str(lab.root), env=env,
                            check=False)
        assert one_line(mismatch) == (
            f"client GET {url}/health failed: tls: failed to verify certificate: x509: "
            f"certificate is valid for localhost, {PROXIED}, not other.proxied.test")
        unknown = lab.step("ca", "health", "--ca-url", f"https://{PROXIED}:{lab.port}",
                           "--root", str(other), env=env, check=False)
        assert one_line(unknown) == (
            f"client GET https://{PROXIED}:{lab.port}/health failed: tls: failed to verify "
            "certificate: x509: certificate signed by unknown authority")
        assert proxy.seen == [f"CONNECT other.proxied.test:{lab.port}",
                              f"CONNECT {PROXIED}:{lab.port}"]


# -- proxies on every request ----------------------------------------------------------------------

def test_bootstrap_certificate_and_renew_go_through_the_proxy(lab, tmp_path):
    url = f"https://{PROXIED}:{lab.port}"
    with forward_proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "STEPPATH": str(tmp_path / "client")}
        lab.step("ca", "bootstrap", "--ca-url", url, "--fingerprint", lab.fingerprint, env=env)
        assert (tmp_path / "client" / "certs" / "root_ca.crt").read_bytes() == \
            lab.root.read_bytes()
        assert proxy.seen == [f"CONNECT {PROXIED}:{lab.port}"] * 2  # the root, then /health
        lab.step("ca", "certificate", "proxied.localhost", str(tmp_path / "p.crt"),
                 str(tmp_path / "p.key"), "--provisioner", "admin",
                 "--provisioner-password-file", str(lab.password), env=env)
        first = x509.load_pem_x509_certificate((tmp_path / "p.crt").read_bytes())
        lab.step("ca", "renew", "--force", str(tmp_path / "p.crt"), str(tmp_path / "p.key"),
                 env=env)  # mutual TLS
        renewed = x509.load_pem_x509_certificate((tmp_path / "p.crt").read_bytes())
    assert renewed.serial_number != first.serial_number
    # the provisioner list, the sign and the renewal: each a tunnel to the CA
    assert len(proxy.seen) > 3 and set(proxy.seen) == {f"CONNECT {PROXIED}:{lab.port}"}


def test_crl_and_ocsp_downloads_use_the_proxy_and_roots(lab):
    https, http = f"https://{PROXIED}:{lab.port}", f"http://{PROXIED}:{lab.http_port}"
    with forward_proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url}
        # the CA's private root verifies the https CRL: the system's roots would not
        checked = lab.step("certificate", "verify", "leaf.crt", "--roots", str(lab.root),
                           "--verify-crl", "--crl-endpoint", f"{https}/crl", "--verify-ocsp",
                           "--ocsp-endpoint", f"{http}/ocsp", "--verbose", env=env)
        assert f"certificate not revoked in CRL {https}/crl" in checked.stdout
        inspected = lab.step("crl", "inspect", f"{https}/crl", "--roots", str(lab.root),
                             env=env)
        assert inspected.stdout.startswith("Certificate Revocation List (CRL):")
        assert proxy.seen == [f"CONNECT {PROXIED}:{lab.port}", f"POST {http}/ocsp",
                              f"CONNECT {PROXIED}:{lab.port}"]
        untrusted = lab.step("crl", "inspect", f"{https}/crl", env=env, check=False)
        assert one_line(untrusted) == (
            f"error downloading {https}/crl: tls: failed to verify certificate: x509: "
            "certificate signed by unknown authority")


def test_loopback_and_no_proxy_bypass_the_proxy(lab):
    with forward_proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": PROXIED}
        lab.step("ca", "health", "--ca-url", f"https://localhost:{lab.port}", "--root",
                 str(lab.root), env=env)  # loopback is never proxied, as in Go
        direct = lab.step("ca", "health", "--ca-url", f"https://{PROXIED}:{lab.port}",
                          "--root", str(lab.root), env=env, check=False)
        assert one_line(direct).startswith(f"client GET https://{PROXIED}:{lab.port}/health "
                                           f"failed: dial tcp: lookup {PROXIED}: ")
        assert proxy.seen == []


# -- an empty password file ------------------------------------------------------------------------

def test_an_empty_password_file_is_named(lab, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")  # trimmed as step trims: nothing left
    token = lab.step("ca", "token", "x.localhost", "--provisioner", "admin",
                     "--provisioner-password-file", str(empty), "--ca-url",
                     f"https://localhost:{lab.port}", "--root", str(lab.root), check=False)
    assert one_line(token) == (f"error reading --provisioner-password-file {empty}: "
                               "the file is empty")
    key = lab.step("crypto", "key", "public", str(lab.tmp / "ca" / "secrets" / "root_ca_key"),
                   "--password-file", str(empty), check=False)
    assert one_line(key) == f"error reading --password-file {empty}: the file is empty"


# -- the provisioner list on a terminal ------------------------------------------------------------

def test_provisioner_list_moves_with_arrow_keys(lab):
    term = Terminal([str(scripts_dir() / "step"), "ca", "token", "pty.localhost", "--ca-url",
                     f"https://localhost:{lab.port}", "--root", str(lab.root),
                     "--provisioner-password-file", str(lab.password)], env=lab.env)
    term.expect("What provisioner key do you want to use?")
    term.expect("▸ admin (JWK)")
    term.send_keys("\x1b[B")  # down: once the cause of "invalid selection '[B'"
    term.expect("▸ second (JWK)")
    term.send_keys("\x1b[A\x1b[B\x1b[B")  # up, then down past the end: stays on the last
    term.send_keys("\r")
    term.expect(f"✔ Provisioner: second (JWK) [kid: {lab.second_kid}]")
    assert term.finish() == 0
    token = term.output.strip().splitlines()[-1].strip()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == lab.second_kid
