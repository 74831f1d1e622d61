"""``step certificate inspect`` / ``fingerprint`` through the real CLI, checked against openssl,
cryptography and step's documented formats."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID
from stepca import _der as der
from stepca.testing import TestCA, make_csr, make_token
from stepca.testing.process import run_step
from stepca.x509util import ProvisionerExtension

LEAF_SANS = ["leaf.example.com", "10.1.2.3", "ops@example.com"]
SCT_LOG_ID = bytes(range(32))
SCT_SIGNATURE = bytes(range(70))
SCT_TIME = datetime.datetime(2024, 3, 4, 5, 6, 7, 89000, tzinfo=datetime.UTC)


class Material:
    """Certificates made by the in-process CA, by openssl and by cryptography's builder."""

    def __init__(self, tmp: Path, env: dict[str, str], chain: list[x509.Certificate],
                 kid: str) -> None:
        self.tmp, self.env, self.chain, self.kid = tmp, env, chain, kid

    def step(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_step(*args, env=self.env, cwd=self.tmp, **kwargs)

    def inspect(self, *args: str, **kwargs: Any) -> str:
        return self.step("certificate", "inspect", *args, **kwargs).stdout

    def openssl(self, *args: str) -> str:
        return subprocess.run(["openssl", *args], cwd=self.tmp, capture_output=True, text=True,
                              check=True).stdout

    def load(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.tmp / name).read_bytes())


def _sct_extension() -> x509.UnrecognizedExtension:
    """An RFC 6962 SCT list, TLS-encoded inside an OCTET STRING."""
    millis = int(SCT_TIME.timestamp() * 1000)
    sct = (b"\x00" + SCT_LOG_ID + millis.to_bytes(8, "big") + b"\x00\x00" + b"\x04\x03"
           + len(SCT_SIGNATURE).to_bytes(2, "big") + SCT_SIGNATURE)
    entries = len(sct).to_bytes(2, "big") + sct
    return x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"),
                                      der.octets(len(entries).to_bytes(2, "big") + entries))


def _builder_certificates(tmp: Path) -> None:
    """What openssl cannot easily make: step's own extensions, SCTs, other names, Ed448."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    upn = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"),
                         der.tlv(0x0C, b"user@example.com"))
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "A&B <x>"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "extras.example.com")])
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Builder CA")]))
               .public_key(key.public_key()).serial_number(2)
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.SubjectAlternativeName([
                   x509.DNSName("extras.example.com"), upn,
                   x509.UniformResourceIdentifier("spiffe://example.org/extras")]),
                   critical=False)
               .add_extension(ProvisionerExtension(6, "acme", "", ("Foo", "bar", "lonely"))
                              .to_extension(), critical=False)
               .add_extension(_sct_extension(), critical=False)
               .add_extension(x509.InhibitAnyPolicy(0), critical=True)
               .add_extension(x509.UnrecognizedExtension(
                   x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.3"), b"\x05\x04\x03"),
                   critical=False))
    cert = builder.sign(issuer_key, hashes.SHA256())
    (tmp / "extras.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ed_key = ed448.Ed448PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed448")])
    ed_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(ed_key.public_key()).serial_number(7)
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
               .sign(ed_key, None))
    (tmp / "ed448.crt").write_bytes(ed_cert.public_bytes(serialization.Encoding.PEM))


def _openssl_certificates(tmp: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-out", "rsa.crt",
        "-subj", "/C=NZ/O=Example/CN=rsa.example.com", "-days", "2")
    run("x509", "-in", "rsa.crt", "-outform", "DER", "-out", "rsa.der")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-sha384",
        "-nodes", "-keyout", "ec384.key", "-out", "ec384.crt", "-subj", "/CN=p384.example.com",
        "-days", "2")
    run("req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "ed.key", "-out", "ed.crt",
        "-subj", "/CN=ed.example.com", "-days", "2")
    run("pkey", "-in", "ed.key", "-pubout", "-outform", "DER", "-out", "ed.pub.der")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "req.key", "-out", "req.csr", "-subj", "/CN=req.example.com", "-addext",
        "subjectAltName=DNS:req.example.com,DNS:alt.example.com,IP:192.0.2.7,"
        "email:req@example.com,URI:https://req.example.com/id")
    # a CA-signed certificate with the extensions openssl knows how to write
    (tmp / "rich.ext").write_text(
        "basicConstraints=critical,CA:TRUE,pathlen:1\n"
        "keyUsage=critical,digitalSignature,keyCertSign,cRLSign\n"
        "extendedKeyUsage=codeSigning,timeStamping\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        "crlDistributionPoints=URI:http://crl.example.com/ca.crl\n"
        "authorityInfoAccess=OCSP;URI:http://ocsp.example.com,caIssuers;URI:"
        "http://ca.example.com/ca.crt\n"
        "nameConstraints=critical,permitted;DNS:example.com,excluded;IP:10.0.0.0/255.0.0.0\n"
        "certificatePolicies=2.23.140.1.2.1\n"
        "1.2.3.4=ASN1:UTF8String:hello\n")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "rich.key", "-out", "rich.csr", "-subj", "/O=Rich/CN=rich.example.com")
    run("x509", "-req", "-in", "rich.csr", "-CA", "rsa.crt", "-CAkey", "rsa.key",
        "-set_serial", "0x0a0b", "-days", "2", "-extfile", "rich.ext", "-out", "rich.crt")


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory, stepca_pki: Any) -> Material:
    tmp = tmp_path_factory.mktemp("inspect")
    ca = TestCA(stepca_pki.config(tmp / "ca"))
    try:
        csr, key = make_csr("leaf.example.com", LEAF_SANS)
        response = ca.sign(csr, make_token(stepca_pki, "leaf.example.com", sans=LEAF_SANS))
        assert response.status_code == 201, response.text
        pems = response.json["certChain"]
    finally:
        ca.close()
    (tmp / "leaf.crt").write_text("".join(pems))
    (tmp / "leaf.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp / "leaf.csr").write_text(csr)
    (tmp / "root.crt").write_bytes(stepca_pki.root.public_bytes(serialization.Encoding.PEM))
    _openssl_certificates(tmp)
    _builder_certificates(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
    return Material(tmp, env, chain, stepca_pki.provisioner_kid)


def _dump(data: bytes, per_line: int, indent: int) -> str:
    pairs = [f"{b:02x}" for b in data]
    return "\n".join(" " * indent + ":".join(pairs[i:i + per_line])
                     + (":" if i + per_line < len(pairs) else "")
                     for i in range(0, len(pairs), per_line))


def _minimal(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- default text ----------------------------------------------------------------------------------

def test_step_ca_leaf_text_agrees_with_openssl(material: Material) -> None:
    leaf = material.chain[0]
    out = material.inspect("leaf.crt")
    serial_hex = material.openssl("x509", "-in", "leaf.crt", "-noout", "-serial").strip()
    serial_hex = serial_hex.split("=", 1)[1].lower()
    assert int(serial_hex, 16) == leaf.serial_number
    whole_bytes = serial_hex.zfill(len(serial_hex) + len(serial_hex) % 2)
    assert out.startswith("Certificate:\n    Data:\n        Version: 3 (0x2)\n"
                          f"        Serial Number: {leaf.serial_number} (0x{whole_bytes})\n"
                          "        Signature Algorithm: ECDSA-SHA256\n"
                          "        Issuer: O=Test,CN=Test Intermediate CA\n        Validity\n")
    dates = material.openssl("x509", "-in", "leaf.crt", "-noout", "-startdate", "-enddate")
    start, end = (" ".join(line.split("=", 1)[1].split()).replace("GMT", "UTC")
                  for line in dates.splitlines())
    assert f"            Not Before: {start}\n            Not After : {end}\n" in out
    ids = material.openssl("x509", "-in", "leaf.crt", "-noout", "-ext",
                           "subjectKeyIdentifier,authorityKeyIdentifier").split()
    skid, akid = [i for i in ids if re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2})+", i)]
    assert f"X509v3 Subject Key Identifier:\n                {skid}\n" in out
    assert f"X509v3 Authority Key Identifier:\n                {akid}\n" in out
    numbers = leaf.public_key().public_numbers()
    assert ("        Subject: CN=leaf.example.com\n        Subject Public Key Info:\n"
            "            Public Key Algorithm: ECDSA\n                Public-Key: (256 bit)\n"
            f"                X:\n{_dump(_minimal(numbers.x), 15, 20)}\n"
            f"                Y:\n{_dump(_minimal(numbers.y), 15, 20)}\n"
            "                Curve: P-256\n") in out
    assert ("            X509v3 Key Usage: critical\n                Digital Signature\n"
            "            X509v3 Extended Key Usage:\n"
            "                Server Authentication, Client Authentication\n") in out
    assert ("            X509v3 Subject Alternative Name:\n                DNS:leaf.example.com\n"
            "                email:ops@example.com\n                IP Address:10.1.2.3\n") in out
    assert ("            X509v3 Step Provisioner:\n                Type: JWK\n"
            f"                Name: admin\n                CredentialID: {material.kid}\n") in out
    assert out.endswith(f"    Signature Algorithm: ECDSA-SHA256\n{_dump(leaf.signature, 18, 9)}\n")


def test_rsa_certificate_pem_der_and_stdin(material: Material) -> None:
    out = material.inspect("rsa.crt")
    modulus = material.openssl("x509", "-in", "rsa.crt", "-noout", "-modulus").strip()
    modulus = bytes.fromhex(modulus.split("=", 1)[1])
    assert ("            Public Key Algorithm: RSA\n                Public-Key: (2048 bit)\n"
            f"                Modulus:\n{_dump(modulus, 15, 20)}\n"
            "                Exponent: 65537 (0x10001)\n") in out
    assert "        Issuer: C=NZ,O=Example,CN=rsa.example.com\n" in out
    assert "        Subject: C=NZ,O=Example,CN=rsa.example.com\n" in out
    assert "    Signature Algorithm: SHA256-RSA\n" in out and "CA:TRUE" in out
    assert material.inspect("rsa.der") == out
    assert material.inspect("-", input=(material.tmp / "rsa.crt").read_text()) == out
    assert material.inspect(input=(material.tmp / "rsa.crt").read_text()) == out
    serial = str(material.load("rsa.crt").serial_number)
    assert material.inspect("--short", "rsa.der").splitlines() == [
        f"X.509v3 Root CA Certificate (RSA 2048) [Serial: {serial[:4]}...{serial[-4:]}]",
        "  Subject:     rsa.example.com", "  Issuer:      rsa.example.com",
        *material.inspect("--short", "rsa.crt").splitlines()[3:]]


def test_p384_and_ed25519_keys(material: Material) -> None:
    p384 = material.inspect("ec384.crt")
    numbers = material.load("ec384.crt").public_key().public_numbers()
    assert ("                Public-Key: (384 bit)\n"
            f"                X:\n{_dump(_minimal(numbers.x), 15, 20)}\n") in p384
    assert "                Curve: P-384\n" in p384
    assert "        Signature Algorithm: ECDSA-SHA384\n" in p384
    assert material.inspect("--short", "ec384.crt").startswith(
        "X.509v3 Root CA Certificate (ECDSA P-384) [Serial: ")

    ed = material.inspect("ed.crt")
    raw = (material.tmp / "ed.pub.der").read_bytes()[-32:]
    assert ("            Public Key Algorithm: Ed25519\n                Public-Key: (32 bit)\n"
            f"{_dump(raw, 15, 20)}\n") in ed
    assert "    Signature Algorithm: Ed25519\n" in ed
    assert "(Ed25519 256)" in material.inspect("--short", "ed.crt")


def test_openssl_extensions_as_step_prints_them(material: Material) -> None:
    out = material.inspect("rich.crt")
    assert "        Serial Number: 2571 (0x0a0b)\n" in out
    assert "        Issuer: C=NZ,O=Example,CN=rsa.example.com\n" in out
    assert ("            X509v3 Basic Constraints: critical\n"
            "                CA:TRUE, pathlen:1\n") in out
    assert ("            X509v3 Key Usage: critical\n"
            "                Digital Signature, Certificate Sign, CRL Sign\n") in out
    assert "            X509v3 Extended Key Usage:\n                Code Signing, Time Stamping\n" \
        in out
    assert ("            X509v3 CRL Distribution Points:\n                Full Name:\n"
            "                  URI:http://crl.example.com/ca.crl\n") in out
    assert ("            Authority Information Access:\n"
            "                OCSP - URI:http://ocsp.example.com\n"
            "                CA Issuers - URI:http://ca.example.com/ca.crt\n") in out
    assert ("            X509v3 Name Constraints: critical\n                Permitted:\n"
            "                  DNS: example.com\n                Excluded:\n"
            "                  IP Range: 10.0.0.0/8\n") in out
    assert "            X509v3 Certificate Policies:\n                Policy: 2.23.140.1.2.1\n" \
        in out
    # an extension step does not know: its OID, then the bytes as text (0c 05 = UTF8String)
    assert "            1.2.3.4:\n                ..hello\n" in out
    assert material.inspect("--short", "rich.crt").startswith(
        "X.509v3 Intermediate CA Certificate (ECDSA P-256) [Serial: 2571]")


def test_step_and_other_extensions_from_a_builder(material: Material) -> None:
    out = material.inspect("extras.crt")
    assert "        Subject: O=A&B <x>,CN=extras.example.com\n" in out
    assert ("            X509v3 Subject Alternative Name:\n"
            "                DNS:extras.example.com\n"
            "                URI:spiffe://example.org/extras\n"
            "                UPN: user@example.com\n") in out
    assert ("            X509v3 Step Provisioner:\n                Type: ACME\n"
            "                Name: acme\n                Foo: bar\n"
            "                lonely: -\n") in out
    millis = f"{SCT_TIME.microsecond // 1000:03d}"
    assert ("            RFC6962 Certificate Transparency SCT:\n                SCT [0]:\n"
            "                    Version: V1 (0x0)\n"
            f"                    LogID: {_b64(SCT_LOG_ID)}\n"
            f"                    Timestamp: Mar 4 05:06:07.{millis} 2024 UTC\n"
            "                    Signature Algorithm: SHA256-ECDSA\n"
            f"{_dump(SCT_SIGNATURE, 18, 22)}\n") in out
    assert "Unknown extension 2.5.29.54\n" in out
    assert "            X509v3 YubiKey Firmware Version:\n                5.4.3\n" in out
    short = material.inspect("--short", "extras.crt").splitlines()
    assert short[0] == "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 2]"
    assert short[1:5] == ["  Subject:     extras.example.com", ("               "
                          "spiffe://example.org/extras"), "  Issuer:      Builder CA",
                          "  Provisioner: acme"]


def test_a_key_go_does_not_know(material: Material) -> None:
    cert = material.load("ed448.crt")
    raw = cert.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    out = material.inspect("ed448.crt")
    assert ("            Public Key Algorithm: 1.3.101.113\n                Public-Key:\n"
            f"                Raw Bytes:\n{_dump(raw, 15, 20)}\n") in out
    assert "        Signature Algorithm: 1.3.101.113\n" in out
    assert material.inspect("--short", "ed448.crt").startswith(
        "X.509v3 TLS Certificate (1.3.101.113) [Serial: 7]")
    doc = json.loads(material.inspect("ed448.crt", "--format", "json"))
    assert doc["subject_key_info"]["key_algorithm"] == {"name": "unknown_algorithm"}
    assert doc["signature_algorithm"] == {"name": "0", "oid": None}


def test_csr_text_short_json_and_pem(material: Material) -> None:
    out = material.inspect("req.csr")
    assert out.startswith("Certificate Request:\n    Data:\n        Version: 0 (0x0)\n"
                          "        Subject: CN=req.example.com\n")
    assert ("        Requested Extensions:\n"
            "            X509v3 Subject Alternative Name:\n"
            "                DNS:req.example.com, DNS:alt.example.com\n"
            "                email:req@example.com\n                IP Address:192.0.2.7\n"
            "                URI:https://req.example.com/id\n") in out
    assert material.inspect("req.csr", "--short").splitlines() == [
        "X.509v3 Certificate Signing Request (ECDSA P-256)", "  Subject:     req.example.com",
        "               alt.example.com", "               192.0.2.7",
        "               req@example.com", "               https://req.example.com/id"]
    csr = x509.load_pem_x509_csr((material.tmp / "req.csr").read_bytes())
    doc = json.loads(material.inspect("req.csr", "--format", "json"))
    assert doc["Raw"] == _b64(csr.public_bytes(serialization.Encoding.DER))
    assert doc["Subject"] == {"common_name": ["req.example.com"]}
    assert doc["DNSNames"] == ["req.example.com", "alt.example.com"]
    assert doc["IPAddresses"] == ["192.0.2.7"] and doc["EmailAddresses"] == ["req@example.com"]
    assert doc["PublicKey"]["X"] == csr.public_key().public_numbers().x
    assert [e["id"] for e in doc["Extensions"]] == ["2.5.29.17"]
    pem = material.inspect("req.csr", "--format", "pem")
    assert pem.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
    assert x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER) == \
        csr.public_bytes(serialization.Encoding.DER)
    der_csr = material.tmp / "req.der"
    der_csr.write_bytes(csr.public_bytes(serialization.Encoding.DER))
    assert material.inspect("req.der") == out


# -- --format json ---------------------------------------------------------------------------------

def test_json_of_a_step_ca_leaf(material: Material) -> None:
    leaf, intermediate = material.chain
    text = material.inspect("leaf.crt", "--format", "json")
    assert text.startswith('{\n  "version": 3,\n  "serial_number": "')
    doc = json.loads(text)
    assert list(doc) == ["version", "serial_number", "signature_algorithm", "issuer", "issuer_dn",
                         "validity", "subject", "subject_dn", "subject_key_info", "extensions",
                         "signature", "fingerprint_md5", "fingerprint_sha1",
                         "fingerprint_sha256", "tbs_noct_fingerprint",
                         "spki_subject_fingerprint", "tbs_fingerprint", "validation_level",
                         "names", "redacted"]
    assert doc["serial_number"] == str(leaf.serial_number)
    algorithm = {"name": "ECDSA-SHA256", "oid": [1, 2, 840, 10045, 4, 3, 2]}
    assert doc["signature_algorithm"] == algorithm
    assert doc["issuer"] == {"common_name": ["Test Intermediate CA"], "organization": ["Test"]}
    assert doc["issuer_dn"] == "O=Test, CN=Test Intermediate CA"
    assert doc["subject_dn"] == "CN=leaf.example.com"
    assert doc["validity"] == {
        "start": leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "length": int((leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds())}
    key = leaf.public_key()
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    generator = ec.derive_private_key(1, ec.SECP256R1()).public_key().public_numbers()
    ecdsa = doc["subject_key_info"]["ecdsa_public_key"]
    assert doc["subject_key_info"]["key_algorithm"] == {"name": "ECDSA"}
    assert doc["subject_key_info"]["fingerprint_sha256"] == hashlib.sha256(spki).hexdigest()
    assert sorted(ecdsa) == ["b", "curve", "gx", "gy", "length", "n", "p", "x", "y"]
    assert (ecdsa["curve"], ecdsa["length"]) == ("P-256", 256)
    assert ecdsa["x"] == _b64(_minimal(key.public_numbers().x))
    assert ecdsa["gx"] == _b64(_minimal(generator.x))
    assert ecdsa["p"] == _b64(_minimal(2**256 - 2**224 + 2**192 + 2**96 - 1))
    extensions = doc["extensions"]
    skid = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    akid = intermediate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    assert extensions == {
        "key_usage": {"digital_signature": True, "value": 1},
        "subject_alt_name": {"dns_names": ["leaf.example.com"],
                             "email_addresses": ["ops@example.com"],
                             "ip_addresses": ["10.1.2.3"]},
        "authority_key_id": akid.hex(), "subject_key_id": skid.hex(),
        "extended_key_usage": {"client_auth": True, "server_auth": True},
        "step_provisioner": {"credentialID": material.kid, "name": "admin", "type": "JWK"}}
    assert doc["signature"] == {"signature_algorithm": algorithm, "value": _b64(leaf.signature),
                                "valid": False, "self_signed": False}
    raw = leaf.public_bytes(serialization.Encoding.DER)
    assert doc["fingerprint_md5"] == hashlib.md5(raw).hexdigest()
    assert doc["fingerprint_sha1"] == hashlib.sha1(raw).hexdigest()
    assert doc["fingerprint_sha256"] == hashlib.sha256(raw).hexdigest()
    assert doc["tbs_fingerprint"] == doc["tbs_noct_fingerprint"] == \
        hashlib.sha256(leaf.tbs_certificate_bytes).hexdigest()
    assert doc["spki_subject_fingerprint"] == hashlib.sha256(
        spki + leaf.subject.public_bytes()).hexdigest()
    assert doc["validation_level"] == "unknown" and doc["redacted"] is False
    assert doc["names"] == ["leaf.example.com", "10.1.2.3"]


def test_json_of_openssl_and_builder_extensions(material: Material) -> None:
    rich = json.loads(material.inspect("rich.crt", "--format", "json"))
    extensions = rich["extensions"]
    assert extensions["basic_constraints"] == {"is_ca": True, "max_path_len": 1}
    assert extensions["key_usage"] == {"digital_signature": True, "certificate_sign": True,
                                       "crl_sign": True, "value": 1 | 32 | 64}
    assert extensions["extended_key_usage"] == {"code_signing": True, "time_stamping": True}
    assert extensions["crl_distribution_points"] == ["http://crl.example.com/ca.crl"]
    assert extensions["authority_info_access"] == {
        "ocsp_urls": ["http://ocsp.example.com"], "issuer_urls": ["http://ca.example.com/ca.crt"]}
    assert extensions["name_constraints"] == {
        "critical": True, "permitted_names": ["example.com"],
        "excluded_ip_addresses": [{"cidr": "10.0.0.0/8", "begin": "10.0.0.0",
                                   "end": "10.255.255.255", "mask": "255.0.0.0"}]}
    assert extensions["certificate_policies"] == [{"id": "2.23.140.1.2.1"}]
    assert rich["unknown_extensions"] == [{"id": "1.2.3.4", "critical": False,
                                           "value": _b64(b"\x0c\x05hello")}]
    assert rich["issuer_dn"] == "C=NZ, O=Example, CN=rsa.example.com"
    assert rich["signature_algorithm"]["name"] == "SHA256-RSA"
    assert rich["validation_level"] == "DV"  # the CA/B Forum's domain-validated policy
    assert json.loads(material.inspect("rsa.crt", "--format", "json"))["signature"][
        "self_signed"] is True

    text = material.inspect("extras.crt", "--format", "json")
    assert '"A\\u0026B \\u003cx\\u003e"' in text  # Go's encoder escapes HTML characters
    extras = json.loads(text)
    assert extras["subject"]["organization"] == ["A&B <x>"]
    assert extras["extensions"]["step_provisioner"] == {"foo": "bar", "lonely": "-",
                                                        "name": "acme", "type": "ACME"}
    assert extras["extensions"]["subject_alt_name"]["other_names"] == [
        {"id": "1.3.6.1.4.1.311.20.2.3", "value": _b64(b"user@example.com")}]
    signed = b"\x04\x03" + len(SCT_SIGNATURE).to_bytes(2, "big") + SCT_SIGNATURE
    assert extras["extensions"]["signed_certificate_timestamps"] == [
        {"version": 0, "log_id": _b64(SCT_LOG_ID), "timestamp": int(SCT_TIME.timestamp()),
         "signature": _b64(signed)}]
    cert = material.load("extras.crt")
    assert extras["tbs_noct_fingerprint"] == hashlib.sha256(
        cert.tbs_precertificate_bytes).hexdigest() != extras["tbs_fingerprint"]
    assert [e["id"] for e in extras["unknown_extensions"]] == ["2.5.29.54",
                                                              "1.3.6.1.4.1.41482.3.3"]
    assert extras["names"] == ["extras.example.com"]  # a spiffe:// URI is not a web name


# -- bundles, stdin, PEM ---------------------------------------------------------------------------

def test_bundles(material: Material) -> None:
    leaf, intermediate = material.chain
    assert material.inspect("leaf.crt").count("Certificate:\n") == 1
    text = material.inspect("leaf.crt", "--bundle")
    assert text.count("Certificate:\n    Data:\n") == 2
    assert "        Subject: O=Test,CN=Test Intermediate CA\n" in text
    short = material.inspect("leaf.crt", "--bundle", "--short").splitlines()
    assert short[0].startswith("X.509v3 TLS Certificate (ECDSA P-256)")
    assert f"  Provisioner: admin [ID: {material.kid[:4]}...{material.kid[-4:]}]" in short
    second = short.index(next(s for s in short[1:] if s.startswith("X.509v3")))
    assert short[second].startswith("X.509v3 Intermediate CA Certificate (ECDSA P-256)")
    assert "  Issuer:      Test Root CA" in short[second:]
    docs = json.loads(material.inspect("leaf.crt", "--bundle", "--format", "json"))
    assert [d["serial_number"] for d in docs] == [str(leaf.serial_number),
                                                  str(intermediate.serial_number)]
    assert docs[1]["extensions"]["basic_constraints"] == {"is_ca": True, "max_path_len": 0}
    # step prints a bundle of one as a single object
    assert isinstance(json.loads(material.inspect("rsa.crt", "--bundle", "--format", "json")),
                      dict)
    root = json.loads(material.inspect("root.crt", "--format", "json"))
    assert root["signature"]["self_signed"] is True
    pem = material.inspect("leaf.crt", "--bundle", "--format", "pem")
    assert x509.load_pem_x509_certificates(pem.encode()) == material.chain
    assert material.inspect("leaf.crt", "--format", "pem") == \
        leaf.public_bytes(serialization.Encoding.PEM).decode()


def test_fingerprints(material: Material) -> None:
    leaf, intermediate = material.chain
    digest = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).digest()
    assert material.step("certificate", "fingerprint", "leaf.crt").stdout == f"{digest.hex()}\n"
    assert material.step("certificate", "fingerprint", "leaf.crt", "--bundle").stdout == (
        f"0: {digest.hex()}\n1: "
        f"{hashlib.sha256(intermediate.public_bytes(serialization.Encoding.DER)).hexdigest()}\n")
    assert material.step("certificate", "fingerprint", "leaf.crt", "--format",
                         "base64-url-raw").stdout == \
        base64.urlsafe_b64encode(digest).decode().rstrip("=") + "\n"
    refused = material.step("certificate", "fingerprint", "leaf.crt", "--sha1", check=False)
    assert refused.returncode == 1 and "'--sha1' requires the '--insecure' flag" in refused.stderr
    sha1 = material.step("certificate", "fingerprint", "-", "--sha1", "--insecure",
                         input=(material.tmp / "rsa.crt").read_text()).stdout
    assert sha1 == hashlib.sha1((material.tmp / "rsa.der").read_bytes()).hexdigest() + "\n"
    csr = x509.load_pem_x509_csr((material.tmp / "req.csr").read_bytes())
    assert material.step("certificate", "fingerprint", "req.csr").stdout == hashlib.sha256(
        csr.public_bytes(serialization.Encoding.DER)).hexdigest() + "\n"


@pytest.mark.parametrize(("args", "message"), [
    (["missing.crt"],
     "error reading file missing.crt: open missing.crt failed: no such file or directory"),
    (["leaf.key"], ("file leaf.key does not contain any valid CERTIFICATE or CERTIFICATE REQUEST "
                   "blocks")),
    (["rich.ext"], ("file rich.ext does not contain any valid CERTIFICATE or CERTIFICATE REQUEST "
                   "blocks")),
    (["leaf.crt", "--short", "--format", "json"],
     "flag '--short' is incompatible with '--format json'"),
    (["leaf.crt", "--short", "--format", "pem"],
     "flag '--short' is incompatible with '--format pem'"),
    (["leaf.crt", "--format", "xml"],
     "invalid value 'xml' for flag '--format'; options are text, json, pem"),
    (["huge.pem"], "error reading file huge.pem: the input is larger than 4 MiB"),
])
def test_errors_are_one_line_on_stderr(material: Material, args: list[str], message: str) -> None:
    huge = material.tmp / "huge.pem"
    if not huge.exists():
        huge.write_bytes(b"-" * (4 * 1024 * 1024 + 1))
    result = material.step("certificate", "inspect", *args, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")


def test_garbage_on_stdin(material: Material) -> None:
    result = material.step("certificate", "inspect", input="not a certificate\n", check=False)
    assert result.returncode == 1
    assert result.stderr == ("file - does not contain any valid CERTIFICATE or CERTIFICATE "
                             "REQUEST blocks\n")


# -- servers ---------------------------------------------------------------------------------------

class _TLSHandler(socketserver.BaseRequestHandler):
    context: ssl.SSLContext

    def handle(self) -> None:
        try:
            with self.context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(1)  # until the client hangs up
        except OSError:  # a client that refuses our certificate aborts the handshake
            pass


@pytest.fixture(scope="module")
def tls_server(material: Material) -> Iterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(material.tmp / "leaf.crt", material.tmp / "leaf.key")
    handler = type("Handler", (_TLSHandler,), {"context": context})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_urls_give_the_served_chain(material: Material, tls_server: int) -> None:
    url = f"https://127.0.0.1:{tls_server}/ignored/path"
    verified = material.inspect(url, "--roots", "root.crt", "--servername", "leaf.example.com",
                                "--short", "--bundle")
    assert verified.count("X.509v3 ") == 2 and "Subject:     leaf.example.com" in verified
    assert "X.509v3 Intermediate CA Certificate" in verified
    assert material.inspect(url, "--roots", "root.crt", "--servername",
                            "leaf.example.com") == material.inspect("leaf.crt")
    docs = json.loads(material.inspect(f"TLS://127.0.0.1:{tls_server}", "--insecure",
                                       "--bundle", "--format", "json"))
    assert [d["serial_number"] for d in docs] == [str(c.serial_number) for c in material.chain]
    fingerprints = material.step("certificate", "fingerprint", f"tcp://127.0.0.1:{tls_server}",
                                 "--insecure", "--bundle").stdout
    assert fingerprints == material.step("certificate", "fingerprint", "leaf.crt",
                                         "--bundle").stdout
    # a directory of roots, as step accepts it
    roots = material.tmp / "roots"
    roots.mkdir(exist_ok=True)
    (roots / "root.crt").write_bytes((material.tmp / "root.crt").read_bytes())
    assert material.inspect(url, "--roots", str(roots), "--servername", "leaf.example.com",
                            "--short").startswith("X.509v3 TLS Certificate")


@pytest.mark.parametrize(("args", "message"), [
    ([], ("failed to connect: tls: failed to verify certificate: "
         "x509: certificate signed by unknown authority")),
    (["--roots", "rsa.crt", "--servername", "leaf.example.com"],
     ("failed to connect: tls: failed to verify certificate: "
     "x509: certificate signed by unknown authority")),
    (["--roots", "root.crt"], ("failed to connect: tls: failed to verify certificate: "
                              "x509: certificate is not valid for 127.0.0.1")),
    (["--roots", "nowhere.crt"], ("failure to load root certificate pool from input path "
                                 "'nowhere.crt': error reading file nowhere.crt: "
                                 "open nowhere.crt failed: no such file or directory")),
])
def test_url_verification_failures(material: Material, tls_server: int, args: list[str],
                                   message: str) -> None:
    result = material.step("certificate", "inspect", f"https://127.0.0.1:{tls_server}", *args,
                           check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")
