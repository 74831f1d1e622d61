"""Active revocation: the CRL (RFC 5280 §5), signed by the intermediate. Pure functions: the
Authority decides when to call them and stores the results. OCSP: ``stepca.ocsp_responder``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from stepca.store import RevocationInfo, StoredCRL
from stepca.x509util import signature_hash

__all__ = ["REASONS", "build_crl"]

# RFC 5280 reason codes (0..10; 7 is unused) as cryptography names them.
REASONS: dict[int, x509.ReasonFlags] = {
    0: x509.ReasonFlags.unspecified, 1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise, 3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded, 5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold, 8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn, 10: x509.ReasonFlags.aa_compromise,
}
EXPIRED_GRACE = timedelta(hours=1)  # expired certificates leave the CRL an hour after expiry


def build_crl(number: int, *, issuer: x509.Certificate, key: Any,
              revoked: Iterable[RevocationInfo], now: datetime, lifetime: timedelta,
              idp_url: str, revocation_mark: int | None = None) -> StoredCRL:
    this_update = now.replace(microsecond=0)
    next_update = this_update + lifetime
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject)
               .last_update(this_update)
               .next_update(next_update)
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(_aki(issuer), critical=False)
               .add_extension(x509.IssuingDistributionPoint(
                   full_name=[x509.UniformResourceIdentifier(idp_url)], relative_name=None,
                   only_contains_user_certs=False, only_contains_ca_certs=False,
                   only_some_reasons=None, indirect_crl=False,
                   only_contains_attribute_certs=False), critical=True))
    for info in revoked:
        if info.expires_at is not None and info.expires_at < now - EXPIRED_GRACE:
            continue
        entry = (x509.RevokedCertificateBuilder().serial_number(info.serial)
                 .revocation_date(info.revoked_at))
        if info.reason_code:  # an entry without a reason means "unspecified"
            entry = entry.add_extension(x509.CRLReason(REASONS[info.reason_code]),
                                        critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    from cryptography.hazmat.primitives import serialization

    crl = builder.sign(key, signature_hash(key))
    return StoredCRL(number, crl.public_bytes(serialization.Encoding.DER), this_update,
                     next_update, revocation_mark)


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())
