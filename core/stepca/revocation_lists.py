"""Active revocation: the CRL (RFC 5280 §5) and OCSP responses (RFC 6960), both signed by the
intermediate. Pure functions: the Authority decides when to call them and stores the results."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from stepca.store import RevocationInfo, StoredCRL
from stepca.x509util import signature_hash

__all__ = ["REASONS", "build_crl", "ocsp_response"]

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


def ocsp_response(request: ocsp.OCSPRequest, *, issuer: x509.Certificate, key: Any,
                  status: ocsp.OCSPCertStatus, revocation: RevocationInfo | None,
                  now: datetime, validity: timedelta) -> ocsp.OCSPResponse:
    """A signed answer for one request; the request's nonce, if any, is echoed."""
    this_update = now.replace(microsecond=0)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
        serial_number=request.serial_number, algorithm=request.hash_algorithm,
        cert_status=status, this_update=this_update, next_update=this_update + validity,
        revocation_time=revocation.revoked_at if revocation else None,
        revocation_reason=(REASONS[revocation.reason_code] if revocation and
                           revocation.reason_code else None),
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer).certificates([issuer])
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        builder = builder.add_extension(nonce, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(key, signature_hash(key) or hashes.SHA256())


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(name hash, key hash) that identify ``issuer`` in an OCSP CertID."""
    from cryptography.hazmat.primitives import serialization

    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(algorithm)
    digest.update(_subject_public_key_bits(spki))
    return name.finalize(), digest.finalize()


def _subject_public_key_bits(spki: bytes) -> bytes:
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }; the key hash
    # covers the BIT STRING's value without its unused-bits byte.
    from stepca import _der

    _, body, _ = _der.read(spki)
    _, _, rest = _der.read(body)
    tag, bits, _ = _der.read(rest)
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo has no BIT STRING")
    return bits[1:]
