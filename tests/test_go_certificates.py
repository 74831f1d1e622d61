"""Certificates laid out as smallstep's step-ca 0.19 lays them out through Go's crypto/x509:
the order and criticality of every extension (sign, renew, rekey, the CA's own TLS certificate),
the order of SANs, the ASN.1 string type of every subject attribute, and the root and
intermediate that ``step ca init`` writes with smallstep's ``pki`` package.

The expected layouts come from Go's source (crypto/x509 ``buildCertExtensions`` writes key usage,
EKU, basic constraints, SKI, AKI, AIA, SAN, ..., CRL distribution points, then the template's
``ExtraExtensions``; step-ca's renewal copies every old extension but the AKI into
``ExtraExtensions``) and were checked against certificates Go 1.19 made with smallstep's
``go.step.sm/crypto/x509util``. openssl reads the string types from the DER independently.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from stepca.testing import TestCA, make_csr, make_pki, make_token
from stepca.x509util import PROVISIONER_OID

KU, EKU = ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE
BC = ExtensionOID.BASIC_CONSTRAINTS
SKI, AKI = ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER
AIA, SAN = ExtensionOID.AUTHORITY_INFORMATION_ACCESS, ExtensionOID.SUBJECT_ALTERNATIVE_NAME
CRLDP = ExtensionOID.CRL_DISTRIBUTION_POINTS

# what Go's x509.CreateCertificate writes for step-ca's default leaf template, with the OCSP and
# CRL pointers as template fields and the provisioner extension in ExtraExtensions
LEAF = [(KU, True), (EKU, False), (SKI, False), (AKI, False), (AIA, False), (SAN, False),
        (CRLDP, False), (PROVISIONER_OID, False)]


def layout(cert: x509.Certificate) -> list[tuple[x509.ObjectIdentifier, bool]]:
    return [(ext.oid, ext.critical) for ext in cert.extensions]


def subject_types(cert: x509.Certificate, tmp_path: Path) -> str:
    """The subject as openssl reads it from the DER, in DER order, each value with its type."""
    path = tmp_path / "subject.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt",
                          "sep_comma_plus,show_type"], capture_output=True, text=True, check=True)
    return out.stdout.strip().removeprefix("subject=")


@pytest.fixture
def pointers_ca(stepca_pki, tmp_path):
    ca = TestCA(stepca_pki.config(
        tmp_path, crl={"enabled": True}, ocsp={"enabled": True},
        authority={"template": {"country": "NZ", "organization": "Acme & Co",
                                "organizationalUnit": "Ops", "locality": "Wellington",
                                "province": "WGN", "streetAddress": "1 Queen St",
                                "serialNumber": "42"}}))
    yield ca
    ca.close()


def issue(ca, pki, subject="svc.example.com", sans=None):
    response = ca.sign(make_csr(subject, sans)[0], make_token(pki, subject, sans=sans))
    assert response.status_code == 201, response.text
    return x509.load_pem_x509_certificate(response.json["crt"].encode())


def test_leaf_extensions_are_in_go_order(stepca_pki, pointers_ca):
    leaf = issue(pointers_ca, stepca_pki)
    assert layout(leaf) == LEAF


def test_leaf_without_pointers_keeps_go_order(stepca_pki, stepca_ca):
    leaf = issue(stepca_ca, stepca_pki)
    assert layout(leaf) == [item for item in LEAF if item[0] not in (AIA, CRLDP)]


def test_renewal_puts_the_aki_first_as_go_does(stepca_pki, pointers_ca):
    leaf = issue(pointers_ca, stepca_pki)
    renewed = pointers_ca.authority.renew(leaf).certificate
    # step-ca copies every extension but the AKI into ExtraExtensions: Go writes the AKI it
    # computes first, then those in the old certificate's order
    assert layout(renewed) == [(AKI, False), *(item for item in LEAF if item[0] != AKI)]
    assert [ext.value for ext in renewed.extensions][1:] == [
        ext.value for ext in leaf.extensions if ext.oid != AKI]


def test_rekey_puts_the_new_ski_then_the_aki_first(stepca_pki, pointers_ca):
    leaf = issue(pointers_ca, stepca_pki)
    key = ec.generate_private_key(ec.SECP256R1())
    rekeyed = pointers_ca.authority.renew(leaf, public_key=key.public_key()).certificate
    assert layout(rekeyed) == [(SKI, False), (AKI, False),
                               *(item for item in LEAF if item[0] not in (SKI, AKI))]
    assert rekeyed.extensions.get_extension_for_oid(SKI).value == \
        x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def test_renewing_a_certificate_without_ski_adds_one_first(stepca_pki, stepca_ca):
    # x509util.CreateCertificate computes a SubjectKeyId when the template has none
    key = ec.generate_private_key(ec.SECP256R1())
    offline, _ = stepca_pki.offline_certificate(key.public_key())
    renewed = stepca_ca.authority.renew(offline).certificate
    assert layout(renewed) == [(SKI, False), (AKI, False), (KU, True), (EKU, False)]
    assert renewed.extensions.get_extension_for_oid(SKI).value == \
        x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def test_the_ca_tls_certificate_is_step_cas(stepca_pki, pointers_ca, tmp_path):
    # authority.GetTLSCertificate: a CSR's subject and SANs, no template, no pointers, a
    # backdate of one minute whatever authority.backdate says
    _, (cert, *_) = pointers_ca.authority.issue_tls_certificate()
    assert layout(cert) == [(KU, True), (EKU, False), (SKI, False), (AKI, False), (SAN, False)]
    assert [str(n.value) for n in cert.extensions.get_extension_for_oid(SAN).value] == [
        "localhost", "127.0.0.1"]
    assert subject_types(cert, tmp_path) == "CN=PRINTABLESTRING:Step Online CA"
    ca = TestCA(stepca_pki.config(tmp_path / "backdate", authority={"backdate": "5s"}))
    try:
        _, (cert, *_) = ca.authority.issue_tls_certificate()
    finally:
        ca.close()
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=24,
                                                                             minutes=1)


def test_sans_are_in_go_order(stepca_pki, stepca_ca):
    sans = ["spiffe://example/svc", "10.0.0.5", "ops@example.com", "svc.example.com", "::1",
            "b.example.com"]
    leaf = issue(stepca_ca, stepca_pki, sans=sans)
    names = leaf.extensions.get_extension_for_oid(SAN).value
    # DNS, email, IP, URI (crypto/x509 marshalSANs), each type in the order requested
    assert [(type(n).__name__, str(n.value)) for n in names] == [
        ("DNSName", "svc.example.com"), ("DNSName", "b.example.com"),
        ("RFC822Name", "ops@example.com"), ("IPAddress", "10.0.0.5"), ("IPAddress", "::1"),
        ("UniformResourceIdentifier", "spiffe://example/svc")]


def test_subject_attributes_are_typed_and_ordered_as_go_writes_them(stepca_pki, pointers_ca,
                                                                    tmp_path):
    # pkix.Name.ToRDNSequence: C, ST, L, street, O, OU, CN, serialNumber; encoding/asn1 writes
    # PrintableString unless a character is outside it ('*' and '&' included): then UTF8String
    leaf = issue(pointers_ca, stepca_pki)
    assert subject_types(leaf, tmp_path) == (
        "C=PRINTABLESTRING:NZ,ST=PRINTABLESTRING:WGN,L=PRINTABLESTRING:Wellington,"
        "street=PRINTABLESTRING:1 Queen St,O=UTF8STRING:Acme & Co,OU=PRINTABLESTRING:Ops,"
        "CN=PRINTABLESTRING:svc.example.com,serialNumber=PRINTABLESTRING:42")
    wildcard = issue(pointers_ca, stepca_pki, "*.example.com")
    assert "CN=UTF8STRING:*.example.com," in subject_types(wildcard, tmp_path)


def test_subject_with_non_printable_characters_is_utf8(stepca_pki, stepca_ca, tmp_path):
    leaf = issue(stepca_ca, stepca_pki, "Jane_Doe", sans=["jane.example.com"])
    assert subject_types(leaf, tmp_path) == "CN=UTF8STRING:Jane_Doe"
    plain = issue(stepca_ca, stepca_pki, "Jane Doe (ops), 2/3 +x:y=z?'.-",
                  sans=["jane.example.com"])
    assert subject_types(plain, tmp_path).startswith("CN=PRINTABLESTRING:Jane Doe")


def test_san_is_critical_only_when_the_whole_subject_is_empty(stepca_pki, stepca_ca,
                                                               pointers_ca):
    issuer = stepca_ca.authority.issuer
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    now = issuer.clock().replace(microsecond=0)
    from stepca.x509util import split_sans

    def san_critical(ca) -> bool:
        cert = ca.authority.issuer.issue(key, subject="", sans=split_sans(["a.example.com"]),
                                         not_before=now, not_after=now + timedelta(hours=1),
                                         extra=[])
        return cert.extensions.get_extension_for_oid(SAN).critical

    assert san_critical(stepca_ca)  # an empty subject (RFC 5280 4.2.1.6)
    assert not san_critical(pointers_ca)  # the template's attributes make a subject


# -- step ca init: smallstep's pki package -------------------------------------------------------

@pytest.fixture(scope="module")
def init_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("init") / "pki", name="Smallstep")


def read(pki, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((pki.steppath / "certs" / name).read_bytes())


def test_root_has_no_aki_and_a_128_bit_serial(init_pki, tmp_path):
    root = read(init_pki, "root_ca.crt")
    # Go writes no AKI when issuer and subject are the same; pki draws 128-bit serials
    assert layout(root) == [(KU, True), (BC, True), (SKI, False)]
    assert 0 < root.serial_number < 2**128
    assert root.extensions.get_extension_for_oid(BC).value.path_length == 1
    assert root.extensions.get_extension_for_oid(SKI).value == \
        x509.SubjectKeyIdentifier.from_public_key(root.public_key())
    ku = root.extensions.get_extension_for_oid(KU).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=3650)
    assert root.issuer == root.subject
    assert subject_types(root, tmp_path) == ("O=PRINTABLESTRING:Smallstep,"
                                             "CN=PRINTABLESTRING:Smallstep Root CA")


def test_intermediate_matches_smallstep_pki(init_pki, tmp_path):
    root, inter = read(init_pki, "root_ca.crt"), read(init_pki, "intermediate_ca.crt")
    assert layout(inter) == [(KU, True), (BC, True), (SKI, False), (AKI, False)]
    assert 0 < inter.serial_number < 2**128
    bc = inter.extensions.get_extension_for_oid(BC).value
    assert bc.ca and bc.path_length == 0
    aki = inter.extensions.get_extension_for_oid(AKI).value
    assert aki.key_identifier == root.extensions.get_extension_for_oid(SKI).value.digest
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None
    assert inter.not_valid_after_utc - inter.not_valid_before_utc == timedelta(days=3650)
    assert inter.issuer.public_bytes() == root.subject.public_bytes()
    assert subject_types(inter, tmp_path) == ("O=PRINTABLESTRING:Smallstep,"
                                              "CN=PRINTABLESTRING:Smallstep Intermediate CA")
    inter.verify_directly_issued_by(root)


def test_a_name_outside_printable_string_is_utf8_in_root_and_intermediate(tmp_path):
    pki = make_pki(tmp_path / "pki", name="Acme & Co*")
    assert subject_types(read(pki, "root_ca.crt"), tmp_path) == (
        "O=UTF8STRING:Acme & Co*,CN=UTF8STRING:Acme & Co* Root CA")
    assert read(pki, "root_ca.crt").subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME)[0].value == "Acme & Co*"


def test_der_and_pem_are_cryptographys_for_each_certificate(init_pki):
    # stepca.x509util keeps the last certificate's DER (the store and the response both want
    # it): each certificate must still get its own
    from stepca.x509util import certificate_der, pem

    root, inter = read(init_pki, "root_ca.crt"), read(init_pki, "intermediate_ca.crt")
    for cert in (root, inter, root, root, inter):
        assert certificate_der(cert) == cert.public_bytes(serialization.Encoding.DER)
        assert pem(cert) == cert.public_bytes(serialization.Encoding.PEM).decode()


def test_the_go_layout_passes_pkilint(tmp_path):
    # RFC 5280 as pkilint reads it, on a PKI whose first DNS name is a real domain (pkilint
    # refuses "localhost" as one): root, intermediate, a leaf with both pointers, its renewal
    from stepca.testing.process import scripts_dir

    pki = make_pki(tmp_path / "pki", dns_names=("ca.example.com",))
    ca = TestCA(pki.config(tmp_path, crl={"enabled": True}, ocsp={"enabled": True},
                           authority={"template": {"organization": "Acme & Co"}}))
    try:
        response = ca.sign(make_csr("svc.example.com", ["svc.example.com", "10.0.0.5"])[0],
                           make_token(pki, "svc.example.com", sans=["svc.example.com", "10.0.0.5"],
                                      audience="https://ca.example.com:9000/1.0/sign"))
        assert response.status_code == 201, response.text
        leaf = x509.load_pem_x509_certificate(response.json["crt"].encode())
        renewed = ca.authority.renew(leaf).certificate
    finally:
        ca.close()
    for name, cert in [("root", read(pki, "root_ca.crt")), ("intermediate",
                       read(pki, "intermediate_ca.crt")), ("leaf", leaf), ("renewed", renewed)]:
        path = tmp_path / f"{name}.crt"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        result = subprocess.run([str(scripts_dir() / "step"), "certificate", "lint", str(path)],
                                capture_output=True, text=True, timeout=120)
        report = json.loads(result.stdout)
        assert report["result"] == "pass", (name, report)
        assert all(f["severity"] not in ("FATAL", "ERROR", "WARNING")
                   for f in report["findings"]), (name, report)
