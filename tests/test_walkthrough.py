"""The design document's walkthrough through real processes: `step ca init` -> `step-ca`
(gunicorn, two workers, TLS on 127.0.0.1) -> `step ca bootstrap` into a second STEPPATH ->
`step ca token` -> `step ca certificate` -> `openssl verify` -> mutual TLS between foo and bar."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from stepca.testing.process import StepCAProcess, free_port, run_step

pytestmark = pytest.mark.e2e


class Walkthrough:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.password = tmp / "password.txt"
        self.password.write_text("p4ss\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        self.ca_env = {**base, "STEPPATH": str(tmp / "ca")}
        self.foo_env = {**base, "STEPPATH": str(tmp / "foo")}

    def step(self, *args: str, env=None, check=True, **kwargs):
        return run_step(*args, env=env or self.foo_env, check=check, cwd=self.tmp, **kwargs)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    w = Walkthrough(tmp_path_factory.mktemp("walkthrough"))
    init = w.step("ca", "init", "--name", "Smallstep", "--provisioner", "admin",
                  "--dns", "localhost", "--dns", "127.0.0.1", "--address", f"127.0.0.1:{w.port}",
                  "--password-file", str(w.password),
                  "--provisioner-password-file", str(w.password), env=w.ca_env)
    assert init.stdout == ""
    w.fingerprint = re.search(r"✔ Root fingerprint: ([0-9a-f]{64})", init.stderr).group(1)
    for line in ("✔ Root certificate: ", "✔ Intermediate private key: ",
                 "✔ Certificate Authority configuration: ", "Your PKI is ready to go."):
        assert line in init.stderr
    w.ca_json = Path(w.ca_env["STEPPATH"]) / "config" / "ca.json"
    config = json.loads(w.ca_json.read_text())
    config["authority"]["disableIssuedAtCheck"] = True  # so a replay after restart meets the db
    w.ca_json.write_text(json.dumps(config, indent="\t"))
    w.root = Path(w.ca_env["STEPPATH"]) / "certs" / "root_ca.crt"
    w.ca = StepCAProcess(w.ca_json, password_file=w.password, root=w.root, port=w.port,
                         env=w.ca_env, extra_args=["--workers", "2"]).start()
    yield w
    w.ca.stop()


def test_init_layout_and_permissions(walk):
    steppath = Path(walk.ca_env["STEPPATH"])
    for folder in ("certs", "secrets", "config", "db"):
        assert (steppath / folder).stat().st_mode & 0o777 == 0o700
    for key in ("root_ca_key", "intermediate_ca_key"):
        path = steppath / "secrets" / key
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        decrypted = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin",
                                    f"file:{walk.password}", "-noout"], capture_output=True)
        assert decrypted.returncode == 0, decrypted.stderr
        wrong = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", "pass:nope",
                                "-noout"], capture_output=True)
        assert wrong.returncode != 0
    config = json.loads(walk.ca_json.read_text())
    assert config["db"]["type"] == "sqlite"
    assert config["authority"]["provisioners"][0]["type"] == "JWK"
    defaults = json.loads((steppath / "config" / "defaults.json").read_text())
    assert defaults == {"ca-url": walk.url, "ca-config": str(walk.ca_json),
                        "fingerprint": walk.fingerprint, "root": str(walk.root)}
    text = subprocess.run(["openssl", "x509", "-in", str(walk.root), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "Subject: O = Smallstep, CN = Smallstep Root CA" in text
    assert "CA:TRUE, pathlen:1" in text and "ASN1 OID: prime256v1" in text
    inter = subprocess.run(["openssl", "x509", "-in", str(steppath / "certs" /
                                                          "intermediate_ca.crt"),
                            "-noout", "-text"], capture_output=True, text=True, check=True).stdout
    assert "CA:TRUE, pathlen:0" in inter and "Certificate Sign, CRL Sign" in inter


def test_root_and_bootstrap(walk):
    wrong = walk.step("ca", "bootstrap", "--ca-url", walk.url, "--fingerprint", "ab" * 32,
                      check=False)
    assert wrong.returncode == 1
    # step-ca's generic message, as step prints it; the CA's log has the fingerprint
    assert wrong.stderr == ("The requested resource could not be found. Please see the "
                            "certificate authority logs for more info.\n")
    assert not (Path(walk.foo_env["STEPPATH"]) / "certs" / "root_ca.crt").exists()

    saved = walk.step("ca", "root", "root_ca.crt", "--ca-url", walk.url,
                      "--fingerprint", walk.fingerprint)
    assert "The root certificate has been saved in root_ca.crt." in saved.stderr
    assert (walk.tmp / "root_ca.crt").read_bytes() == walk.root.read_bytes()

    boot = walk.step("ca", "bootstrap", "--ca-url", walk.url, "--fingerprint", walk.fingerprint)
    foo_root = Path(walk.foo_env["STEPPATH"]) / "certs" / "root_ca.crt"
    assert f"The root certificate has been saved in {foo_root}." in boot.stderr
    assert foo_root.read_bytes() == walk.root.read_bytes()
    assert foo_root.stat().st_mode & 0o777 == 0o600
    defaults = json.loads((Path(walk.foo_env["STEPPATH"]) / "config" / "defaults.json")
                          .read_text())
    assert defaults == {"ca-url": walk.url, "fingerprint": walk.fingerprint,
                        "root": str(foo_root)}
    assert walk.step("ca", "health").stdout == "ok\n"
    # the root bundle, the federation (here the root alone), and the provisioner list
    assert walk.step("ca", "roots").stdout.encode() == walk.root.read_bytes()
    assert walk.step("ca", "federation").stdout.encode() == walk.root.read_bytes()
    saved = walk.step("ca", "roots", "roots.pem")
    assert "The root certificate bundle has been saved in roots.pem." in saved.stderr
    assert (walk.tmp / "roots.pem").read_bytes() == walk.root.read_bytes()
    listed = json.loads(walk.step("ca", "provisioner", "list").stdout)
    assert [(p["type"], p["name"]) for p in listed] == [("JWK", "admin")]
    assert "encryptedKey" in listed[0] and "d" not in listed[0]["key"]
    server = walk.step("certificate", "inspect", walk.url, "--short", "--roots", str(foo_root))
    assert "X.509v3 TLS Certificate (ECDSA P-256)" in server.stdout
    assert "Subject:     Step Online CA\n               localhost\n               127.0.0.1" \
        in server.stdout
    assert "Issuer:      Smallstep Intermediate CA" in server.stdout
    assert walk.step("certificate", "fingerprint", str(foo_root)).stdout.strip() == \
        walk.fingerprint


def test_token_then_certificate(walk):
    token = walk.step("ca", "token", "foo.internal", "--provisioner", "admin",
                      "--password-file", str(walk.password))
    jwt = token.stdout.strip()
    assert token.stdout == jwt + "\n" and jwt.count(".") == 2
    assert "✔ Provisioner: admin (JWK) [kid: " in token.stderr
    decoded = json.loads(walk.step("crypto", "jwt", "inspect", "--insecure", input=jwt).stdout)
    assert decoded["header"]["alg"] == "ES256" and decoded["header"]["typ"] == "JWT"
    payload = decoded["payload"]
    assert sorted(payload) == ["aud", "exp", "iat", "iss", "jti", "nbf", "sans", "sha", "sub"]
    assert payload["aud"] == f"{walk.url}/1.0/sign" and payload["iss"] == "admin"
    assert payload["sub"] == "foo.internal" and payload["sans"] == ["foo.internal"]
    assert payload["sha"] == walk.fingerprint and payload["exp"] - payload["nbf"] == 300

    out = walk.step("ca", "certificate", "foo.internal", "foo.crt", "foo.key", "--token", jwt)
    assert out.stdout == ""
    assert f"✔ CA: {walk.url}\n✔ Certificate: foo.crt\n✔ Private Key: foo.key" in out.stderr
    assert (walk.tmp / "foo.key").stat().st_mode & 0o777 == 0o600
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(walk.root), "-untrusted",
                             "foo.crt", "foo.crt"], cwd=walk.tmp, capture_output=True, text=True)
    assert verify.returncode == 0 and "foo.crt: OK" in verify.stdout
    text = subprocess.run(["openssl", "x509", "-in", "foo.crt", "-noout", "-text"],
                          cwd=walk.tmp, capture_output=True, text=True, check=True).stdout
    assert "Subject: CN = foo.internal" in text and "DNS:foo.internal" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "1.3.6.1.4.1.37476.9000.64.1" in text
    short = walk.step("certificate", "inspect", "--bundle", "--short", "foo.crt").stdout
    assert "Provisioner: admin [ID: " in short and short.count("X.509v3") == 2

    replay = walk.step("ca", "certificate", "foo.internal", "foo2.crt", "foo2.key",
                       "--token", jwt, check=False)
    assert replay.returncode == 1 and "token already used" in replay.stderr
    assert not (walk.tmp / "foo2.crt").exists()
    walk.foo_token = jwt


def test_certificate_without_token_prompts_nothing(walk):
    out = walk.step("ca", "certificate", "bar.internal", "bar.crt", "bar.key",
                    "--provisioner-password-file", str(walk.password), "--not-after", "2h")
    assert "✔ Provisioner: admin (JWK)" in out.stderr and "✔ Certificate: bar.crt" in out.stderr
    missing = walk.step("ca", "certificate", "baz.internal", "baz.crt", "baz.key", check=False)
    assert missing.returncode == 1
    assert "requires the '--provisioner-password-file' flag" in missing.stderr


def test_mutual_tls_between_foo_and_bar(walk):
    root = str(walk.root)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=root)
    server_ctx.load_cert_chain(walk.tmp / "bar.crt", walk.tmp / "bar.key")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=root)
    client_ctx.load_cert_chain(walk.tmp / "foo.crt", walk.tmp / "foo.key")
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            seen["client"] = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
            tls.sendall(b"hello foo\n")

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(listener.getsockname()) as raw, \
            client_ctx.wrap_socket(raw, server_hostname="bar.internal") as tls:
        server_cn = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
        assert tls.recv(100) == b"hello foo\n"
    thread.join(10)
    listener.close()
    assert server_cn == "bar.internal" and seen["client"] == "foo.internal"

    # and a peer without a certificate from this CA is refused by bar
    stranger = ssl.create_default_context(cafile=root)
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[Exception] = []

    def refuse() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True):
                pass
        except ssl.SSLError as exc:
            errors.append(exc)

    thread = threading.Thread(target=refuse)
    thread.start()
    with socket.create_connection(listener.getsockname()) as raw:
        try:
            with stranger.wrap_socket(raw, server_hostname="bar.internal") as tls:
                tls.recv(10)
        except (ssl.SSLError, ConnectionError):
            pass
    thread.join(10)
    listener.close()
    assert errors, "bar accepted a client without a certificate"


def test_replay_refused_by_every_worker_and_after_restart(walk):
    token = walk.foo_token
    csr = subprocess.run(["openssl", "req", "-new", "-key", "foo.key", "-subj",
                          "/CN=foo.internal"], cwd=walk.tmp, capture_output=True, text=True,
                         check=True).stdout
    refused_by: set[str] = set()
    for _ in range(60):
        # a new connection each time, so either worker may take it
        response = requests.post(f"{walk.ca.url}/1.0/sign", json={"csr": csr, "ott": token},
                                 verify=str(walk.root), headers={"Connection": "close"},
                                 timeout=10)
        assert response.status_code == 401
        assert response.json()["message"].endswith("token already used.")
        refused_by = set(re.findall(r'"POST /1.0/sign HTTP/1.1" 401 .* pid=<?(\d+)',
                                    walk.ca.logs()))
        if len(refused_by) >= 2:
            break
    assert len(refused_by) >= 2, "both gunicorn workers should have refused the replay"

    db = Path(walk.ca_env["STEPPATH"]) / "db" / "stepca.db"
    walk.ca.stop()
    walk.ca.start()
    again = requests.post(f"{walk.ca.url}/1.0/sign", json={"csr": csr, "ott": token},
                          verify=str(walk.root), timeout=10)
    assert again.status_code == 401 and again.json()["message"].endswith("token already used.")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM x509_certs").fetchone()[0] == 2
        assert conn.execute("SELECT COUNT(*) FROM used_ott").fetchone()[0] == 2
    assert db.stat().st_mode & 0o777 == 0o600


def test_sign_an_existing_csr(walk):
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "svc.key", "-out", "svc.csr",
                    "-subj", "/CN=svc.internal", "-addext", "subjectAltName=DNS:svc.internal"],
                   cwd=walk.tmp, capture_output=True, check=True)
    out = walk.step("ca", "sign", "svc.csr", "svc.crt", "--provisioner-password-file",
                    str(walk.password))
    assert "✔ Certificate: svc.crt" in out.stderr
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(walk.root), "-untrusted",
                             "svc.crt", "svc.crt"], cwd=walk.tmp, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    again = walk.step("ca", "sign", "svc.csr", "svc.crt", "--provisioner-password-file",
                      str(walk.password), check=False)
    assert again.returncode == 1 and "already exists: use --force" in again.stderr
    walk.step("ca", "sign", "svc.csr", "svc.crt", "--provisioner-password-file",
              str(walk.password), "--force")


def test_certificate_flags_key_type_sans_validity_and_force(walk):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    password = ["--provisioner-password-file", str(walk.password)]
    before = datetime.now(UTC).replace(microsecond=0)
    walk.step("ca", "certificate", "multi.internal", "m.crt", "m.key", "--san", "multi.internal",
              "--san", "10.0.0.9", "--kty", "RSA", "--size", "3072", "--not-before", "1m",
              "--not-after", "3h", *password)
    cert = x509.load_pem_x509_certificate((walk.tmp / "m.crt").read_bytes())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(v) for v in sans.get_values_for_type(x509.DNSName)] == ["multi.internal"]
    assert [str(v) for v in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.9"]
    # step-ca reads a duration in notAfter from notBefore, as here
    start = cert.not_valid_before_utc
    assert before + timedelta(minutes=1) <= start <= before + timedelta(minutes=1, seconds=5)
    assert cert.not_valid_after_utc - start == timedelta(hours=3)
    assert (walk.tmp / "m.key").stat().st_mode & 0o777 == 0o600

    again = walk.step("ca", "certificate", "multi.internal", "m.crt", "m.key", "--kty", "EC",
                      "--curve", "P-384", *password, check=False)
    assert again.returncode == 1 and "already exists: use --force" in again.stderr
    assert isinstance(x509.load_pem_x509_certificate(
        (walk.tmp / "m.crt").read_bytes()).public_key(), rsa.RSAPublicKey)  # left as it was
    walk.step("ca", "certificate", "multi.internal", "m.crt", "m.key", "--kty", "EC",
              "--curve", "P-384", "-f", *password)
    key = x509.load_pem_x509_certificate((walk.tmp / "m.crt").read_bytes()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    walk.step("ca", "certificate", "multi.internal", "m.crt", "m.key", "--kty", "OKP",
              "--force", *password)
    key = x509.load_pem_x509_certificate((walk.tmp / "m.crt").read_bytes()).public_key()
    assert isinstance(key, ed25519.Ed25519PublicKey)


def test_token_with_explicit_ca_url_root_and_validity(walk, tmp_path):
    import time

    # a STEPPATH never bootstrapped: everything comes from the flags
    env = {**walk.foo_env, "STEPPATH": str(tmp_path / "empty")}
    now = int(time.time())
    token = walk.step("ca", "token", "win.internal", "--issuer", "admin", "--ca-url", walk.url,
                      "--root", str(walk.root), "--password-file", str(walk.password),
                      "--not-before", "30s", "--not-after", "10m", "--output-file", "win.jwt",
                      env=env)
    assert token.stdout == ""
    saved = walk.tmp / "win.jwt"
    assert saved.stat().st_mode & 0o777 == 0o600
    payload = json.loads(walk.step("crypto", "jwt", "inspect", "--insecure",
                                   input=saved.read_text()).stdout)["payload"]
    assert payload["iss"] == "admin" and payload["aud"] == f"{walk.url}/1.0/sign"
    assert payload["sha"] == walk.fingerprint and payload["sans"] == ["win.internal"]
    assert now + 30 <= payload["nbf"] <= now + 35  # the token's own validity
    assert now + 600 <= payload["exp"] <= now + 605
    missing = walk.step("ca", "token", "win.internal", "--issuer", "admin", "--password-file",
                        str(walk.password), env=env, check=False)
    assert missing.returncode == 1 and "requires the '--ca-url' flag" in missing.stderr


def test_offline_token_and_key_file(walk):
    offline = walk.step("ca", "token", "off.internal", "--offline", "--provisioner-password-file",
                        str(walk.password), env=walk.ca_env)
    cert = walk.step("ca", "certificate", "off.internal", "off.crt", "off.key", "--token",
                     offline.stdout.strip())
    assert "✔ Certificate: off.crt" in cert.stderr
    # --key: sign with the provisioner's private key held in a file (here decrypted from ca.json)
    from stepca.jose import decrypt_pbes2

    entry = json.loads(walk.ca_json.read_text())["authority"]["provisioners"][0]
    (walk.tmp / "prov.json").write_bytes(decrypt_pbes2(entry["encryptedKey"], b"p4ss"))
    keyed = walk.step("ca", "token", "key.internal", "--key", "prov.json", "--provisioner",
                      "admin", "--san", "key.internal", "--san", "10.9.8.7")
    cert = walk.step("ca", "certificate", "key.internal", "key.crt", "key.key", "--token",
                     keyed.stdout.strip())
    text = subprocess.run(["openssl", "x509", "-in", "key.crt", "-noout", "-ext",
                           "subjectAltName"], cwd=walk.tmp, capture_output=True, text=True,
                          check=True).stdout
    assert "DNS:key.internal, IP Address:10.9.8.7" in text
    wrong = walk.step("ca", "token", "x.internal", "--provisioner", "admin",
                      "--provisioner-password-file", str(walk.tmp / "root_ca.crt"), check=False)
    assert wrong.returncode == 1
    assert "error decrypting the provisioner key: decryption failed" in wrong.stderr
