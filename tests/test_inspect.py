"""step certificate inspect / fingerprint through the real CLI, checked against openssl."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.testing import TestCA, make_csr, make_token
from stepca.testing.process import run_step
from stepca.x509util import fingerprint


@pytest.fixture(scope="module")
def material(tmp_path_factory, stepca_pki):
    tmp = tmp_path_factory.mktemp("inspect")
    ca = TestCA(stepca_pki.config(tmp / "ca"))
    csr, key = make_csr("leaf.example.com", ["leaf.example.com", "10.1.2.3",
                                             "ops@example.com"])
    chain = ca.sign(csr, make_token(stepca_pki, "leaf.example.com", sans=[
        "leaf.example.com", "10.1.2.3", "ops@example.com"])).json["certChain"]
    ca.close()
    (tmp / "leaf.crt").write_text("".join(chain))
    (tmp / "leaf.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp / "leaf.csr").write_text(csr)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    "rsa.key", "-out", "rsa.crt", "-subj", "/C=NZ/O=Example/CN=rsa.example.com",
                    "-days", "2"], cwd=tmp, check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-in", "rsa.crt", "-outform", "DER", "-out", "rsa.der"],
                   cwd=tmp, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return tmp, env, [x509.load_pem_x509_certificate(c.encode()) for c in chain]


def step(material, *args, **kwargs):
    tmp, env, _ = material
    return run_step(*args, env=env, cwd=tmp, **kwargs)


def test_text_matches_openssl(material):
    tmp, _, chain = material
    out = step(material, "certificate", "inspect", "leaf.crt").stdout
    leaf = chain[0]
    assert out.startswith("Certificate:\n    Data:\n        Version: 3 (0x2)\n")
    hex_serial = f"{leaf.serial_number:x}"
    hex_serial = hex_serial.zfill(len(hex_serial) + len(hex_serial) % 2)  # whole bytes
    assert f"Serial Number: {leaf.serial_number} (0x{hex_serial})" in out
    openssl = subprocess.run(["openssl", "x509", "-in", "leaf.crt", "-noout", "-ext",
                              "subjectKeyIdentifier,authorityKeyIdentifier"], cwd=tmp,
                             capture_output=True, text=True, check=True).stdout
    ids = re.findall(r"([0-9A-F]{2}(?::[0-9A-F]{2}){19})", openssl)
    assert ids and all(i in out for i in ids)
    assert "Issuer: O=Test,CN=Test Intermediate CA" in out
    assert "Subject: CN=leaf.example.com" in out
    assert "DNS:leaf.example.com" in out and "IP Address:10.1.2.3" in out
    assert "email:ops@example.com" in out
    assert "X509v3 Step Provisioner:\n                Type: JWK\n                Name: admin" in out
    assert "Curve: P-256" in out and "Signature Algorithm: ECDSA-SHA256" in out
    assert "Server Authentication, Client Authentication" in out


def test_rsa_der_and_stdin(material):
    tmp, _, _ = material
    out = step(material, "certificate", "inspect", "rsa.der").stdout
    assert "Public-Key: (2048 bit)" in out and "Exponent: 65537 (0x10001)" in out
    assert "Subject: C=NZ,O=Example,CN=rsa.example.com" in out
    short = step(material, "certificate", "inspect", "--short", "-",
                 input=(tmp / "rsa.crt").read_text()).stdout
    assert short.startswith("X.509v3 Root CA Certificate (RSA 2048)")


def test_csr(material):
    out = step(material, "certificate", "inspect", "leaf.csr").stdout
    assert out.startswith("Certificate Request:\n    Data:\n        Version: 0 (0x0)\n")
    assert "Requested Extensions:" in out and "IP Address:10.1.2.3" in out
    short = step(material, "certificate", "inspect", "leaf.csr", "--short").stdout
    assert short.startswith("X.509v3 Certificate Signing Request (ECDSA P-256)")


def test_json_and_bundle(material):
    _, _, chain = material
    doc = json.loads(step(material, "certificate", "inspect", "leaf.crt", "--format",
                          "json").stdout)
    leaf = chain[0]
    assert doc["serial_number"] == str(leaf.serial_number)
    assert doc["subject"]["common_name"] == ["leaf.example.com"]
    assert doc["extensions"]["subject_alt_name"]["ip_addresses"] == ["10.1.2.3"]
    assert doc["extensions"]["step_provisioner"]["name"] == "admin"
    assert doc["fingerprint_sha256"] == fingerprint(leaf)
    assert doc["validity"]["length"] == int((leaf.not_valid_after_utc -
                                             leaf.not_valid_before_utc).total_seconds())
    both = json.loads(step(material, "certificate", "inspect", "leaf.crt", "--format", "json",
                           "--bundle").stdout)
    assert isinstance(both, list) and len(both) == 2
    assert both[1]["extensions"]["basic_constraints"] == {"is_ca": True, "max_path_len": 0}
    pem = step(material, "certificate", "inspect", "leaf.crt", "--bundle", "--format",
               "pem").stdout
    assert x509.load_pem_x509_certificates(pem.encode()) == chain


def test_fingerprint(material):
    _, _, chain = material
    assert step(material, "certificate", "fingerprint", "leaf.crt").stdout == \
        f"{fingerprint(chain[0])}\n"
    lines = step(material, "certificate", "fingerprint", "leaf.crt", "--bundle").stdout
    assert lines == f"0: {fingerprint(chain[0])}\n1: {fingerprint(chain[1])}\n"


@pytest.mark.parametrize(("args", "message"), [
    (["certificate", "inspect", "missing.crt"], "open missing.crt: no such file or directory"),
    (["certificate", "inspect", "leaf.key"], "error parsing leaf.key"),
    (["certificate", "inspect", "leaf.crt", "--short", "--format", "json"],
     "flag '--short' is incompatible with '--format json'"),
])
def test_errors(material, args, message):
    result = step(material, *args, check=False)
    assert result.returncode == 1 and message in result.stderr


def test_url_with_the_whole_chain(material):
    tmp, _, chain = material
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "leaf.crt", tmp / "leaf.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    root = tmp / "ca" / "root.pem"
    root.write_bytes(b"")  # not trusted: first try must fail to verify
    refused = step(material, "certificate", "inspect", f"https://127.0.0.1:{port}", "--short",
                   check=False)
    assert refused.returncode == 1 and "use --roots or --insecure" in refused.stderr
    out = step(material, "certificate", "inspect", f"https://127.0.0.1:{port}", "--short",
               "--bundle", "--insecure").stdout
    assert out.count("X.509v3") == 2 and "Subject:     leaf.example.com" in out
    thread.join(10)
    listener.close()
