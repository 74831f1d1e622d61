"""What a JWK-authorized leaf contains, compared with step-ca's default leaf template."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepca.testing import TestCA, make_csr, make_token
from stepca.x509util import PROVISIONER_OID, ProvisionerExtension


def issue(ca, pki, subject="svc.example.com", sans=None, **extra):
    response = ca.sign(make_csr(subject, sans)[0], make_token(pki, subject, sans=sans), **extra)
    assert response.status_code == 201, response.text
    return [x509.load_pem_x509_certificate(c.encode()) for c in response.json["certChain"]]


def test_default_leaf(stepca_pki, stepca_ca, tmp_path):
    leaf, intermediate = issue(stepca_ca, stepca_pki, sans=["svc.example.com", "10.0.0.5",
                                                            "ops@example.com",
                                                            "spiffe://example/svc"])
    assert leaf.subject.rfc4514_string() == "CN=svc.example.com"
    assert leaf.issuer == intermediate.subject
    assert 0 < leaf.serial_number < 2**128
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24, minutes=1)
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # Go's order (crypto/x509 marshalSANs): DNS, email, IP, URI
    assert [str(n.value) for n in san] == ["svc.example.com", "ops@example.com", "10.0.0.5",
                                           "spiffe://example/svc"]
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == intermediate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    with __import__("pytest").raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    ext = ProvisionerExtension.from_certificate(leaf)
    assert (ext.type, ext.name, ext.credential_id) == (1, "admin", stepca_pki.provisioner_kid)
    assert not leaf.extensions.get_extension_for_oid(PROVISIONER_OID).critical
    # The DER is step's: SEQUENCE { INTEGER 1, OCTET STRING name, OCTET STRING kid }
    der = leaf.extensions.get_extension_for_oid(PROVISIONER_OID).value.value
    path = tmp_path / "ext.der"
    path.write_bytes(der)
    parsed = subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", str(path)],
                            capture_output=True, text=True, check=True).stdout
    lines = [line.split(":", 3)[-1].strip() for line in parsed.splitlines()]
    assert "prim: INTEGER           :01" in parsed
    assert parsed.count("prim: OCTET STRING") == 2
    assert any(line.startswith("admin") for line in lines)


def test_extension_key_values_round_trip():
    ext = ProvisionerExtension(3, "gcp", "1234", ("InstanceID", "i-123", "Zone", "ü"))
    assert ProvisionerExtension.from_der(ext.to_extension().value) == ext


def test_provisioner_claims_and_authority_template(stepca_pki, tmp_path):
    entry = {**stepca_pki.ca_json["authority"]["provisioners"][0],
             "claims": {"defaultTLSCertDuration": "2h", "maxTLSCertDuration": "4h",
                        "disableSmallstepExtensions": True}}
    config = stepca_pki.config(tmp_path, provisioners=[entry], authority={
        "template": {"organization": "Example Inc", "country": "NZ"}, "backdate": "30s"})
    ca = TestCA(config)
    try:
        leaf = issue(ca, stepca_pki)[0]
        assert leaf.subject.rfc4514_string() == "CN=svc.example.com,O=Example Inc,C=NZ"
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=2,
                                                                                seconds=30)
        try:
            leaf.extensions.get_extension_for_oid(PROVISIONER_OID)
            raise AssertionError("disableSmallstepExtensions was ignored")
        except x509.ExtensionNotFound:
            pass
        refused = ca.sign(make_csr()[0], make_token(stepca_pki), notAfter="5h")
        assert refused.status_code == 403
    finally:
        ca.close()


def test_openssl_verifies_chain(stepca_pki, stepca_ca, tmp_path):
    from cryptography.hazmat.primitives import serialization

    chain = issue(stepca_ca, stepca_pki)
    (tmp_path / "chain.pem").write_bytes(b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in chain))
    (tmp_path / "root.pem").write_bytes(stepca_pki.root.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(["openssl", "verify", "-CAfile", "root.pem", "-untrusted",
                             "chain.pem", "-purpose", "sslserver", "chain.pem"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
