"""Building a CRL: what it lists, and that its cost grows with its entries, not with their
square (benchmarks/README.md, "Cost as the store grows")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stepca.revocation_lists import REASONS, build_crl
from stepca.store import RevocationInfo

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
IDP = "https://ca.example.com/1.0/crl"


@pytest.fixture(scope="module")
def issuer():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Growth Intermediate CA")])
    certificate = x509.CertificateBuilder(
        issuer_name=name, subject_name=name, public_key=key.public_key(), serial_number=7,
        not_valid_before=NOW - timedelta(days=1), not_valid_after=NOW + timedelta(days=365),
        extensions=[x509.Extension(x509.SubjectKeyIdentifier.oid, False,
                                   x509.SubjectKeyIdentifier.from_public_key(key.public_key()))],
    ).sign(key, hashes.SHA256())
    return certificate, key


def revocations(count: int) -> list[RevocationInfo]:
    """Every reason code (7 and 0 carry no reason extension), some long expired."""
    return [RevocationInfo(serial=1000 + i, provisioner_id="p", reason_code=i % 11, reason="",
                           revoked_at=NOW - timedelta(minutes=i),
                           expires_at=NOW - timedelta(hours=2) if i % 5 == 0
                           else NOW + timedelta(hours=i), token_id=None)
            for i in range(count)]


def entry_by_entry(issuer, key, revoked, number):
    """The CRL as cryptography's fluent builder makes it, one entry at a time."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject).last_update(NOW).next_update(NOW + timedelta(days=1))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                   issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value),
                   critical=False)
               .add_extension(x509.IssuingDistributionPoint(
                   full_name=[x509.UniformResourceIdentifier(IDP)], relative_name=None,
                   only_contains_user_certs=False, only_contains_ca_certs=False,
                   only_some_reasons=None, indirect_crl=False,
                   only_contains_attribute_certs=False), critical=True))
    for info in revoked:
        if info.expires_at < NOW - timedelta(hours=1):
            continue
        entry = (x509.RevokedCertificateBuilder().serial_number(info.serial)
                 .revocation_date(info.revoked_at))
        if info.reason_code in REASONS and info.reason_code:
            entry = entry.add_extension(x509.CRLReason(REASONS[info.reason_code]),
                                        critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, hashes.SHA256())


def test_a_crl_holds_what_the_entry_by_entry_builder_puts_in_it(issuer):
    certificate, key = issuer
    revoked = revocations(40)
    built = build_crl(5, issuer=certificate, key=key, revoked=revoked, now=NOW,
                      lifetime=timedelta(days=1), idp_url=IDP)
    crl = x509.load_der_x509_crl(built.der)
    assert crl.tbs_certlist_bytes == entry_by_entry(certificate, key, revoked, 5).tbs_certlist_bytes
    assert crl.is_signature_valid(certificate.public_key())
    assert len(crl) == 32  # the 8 expired more than an hour ago are left out


def test_building_a_crl_copies_no_builder_per_entry(issuer, monkeypatch):
    """add_revoked_certificate copies every entry so far: n entries cost n² (10 s for 100,000
    revocations). The CRL is built from its list of entries in one call."""
    def quadratic(self, revoked):
        raise AssertionError("a builder copied per entry")

    monkeypatch.setattr(x509.CertificateRevocationListBuilder, "add_revoked_certificate",
                        quadratic)
    certificate, key = issuer
    built = build_crl(1, issuer=certificate, key=key, revoked=revocations(3), now=NOW,
                      lifetime=timedelta(days=1), idp_url=IDP)
    assert len(x509.load_der_x509_crl(built.der)) == 2
