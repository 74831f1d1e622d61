"""Active revocation: the CRL (RFC 5280 §5), signed by the intermediate and kept in the
revocation store. OCSP: ``stepca.ocsp_responder``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from stepca.config import CRLOptions
from stepca.store import RevocationInfo, RevocationStore, StoredCRL
from stepca.x509util import authority_key_identifier, signature_hash

__all__ = ["REASONS", "CRLPublisher", "build_crl"]

# RFC 5280 reason codes (0..10; 7 is unassigned) as cryptography names them.
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
    listed_after = now - EXPIRED_GRACE
    # One constructor call with every entry: the fluent add_revoked_certificate copies the
    # list of entries on each call, which made a CRL of n entries cost n² (10 s for 100,000).
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.subject, last_update=this_update, next_update=next_update,
        extensions=[
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
            x509.Extension(x509.AuthorityKeyIdentifier.oid, False,
                           authority_key_identifier(issuer)),
            x509.Extension(x509.IssuingDistributionPoint.oid, True,
                           issuing_distribution_point(idp_url)),
        ],
        revoked_certificates=[revoked_entry(info) for info in revoked
                              if info.expires_at is None or info.expires_at >= listed_after])
    from cryptography.hazmat.primitives import serialization

    crl = builder.sign(key, signature_hash(key))
    return StoredCRL(number, crl.public_bytes(serialization.Encoding.DER), this_update,
                     next_update, revocation_mark)


def issuing_distribution_point(idp_url: str) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(idp_url)], relative_name=None,
        only_contains_user_certs=False, only_contains_ca_certs=False, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)


def revoked_entry(info: RevocationInfo) -> x509.RevokedCertificate:
    """The CRL entry of one revocation."""
    # An entry without a reason means "unspecified"; so does 7, which RFC 5280 leaves
    # unassigned and step-ca accepts.
    reason = REASONS.get(info.reason_code) if info.reason_code else None
    return x509.RevokedCertificateBuilder(
        serial_number=info.serial, revocation_date=info.revoked_at,
        extensions=[] if reason is None else [
            x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(reason))],
    ).build()


class CRLPublisher:
    """The CA's current CRL: built after a revocation (``generateOnRevoke``), on request once
    ``renewPeriod`` has passed or a revocation was recorded after it was built, so the one
    served is never stale (docs/decisions/0012), and at start-up unless the stored one is
    current and signed as this configuration signs (docs/decisions/0042)."""

    def __init__(self, options: CRLOptions, *, issuer: x509.Certificate, key: Any,
                 revocations: RevocationStore, clock: Callable[[], datetime]) -> None:
        self.options = options
        self.issuer, self.key = issuer, key
        self.revocations = revocations
        self.clock = clock

    def generate(self, *, covering: int | None = None) -> StoredCRL:
        """Sign and keep a new CRL. ``covering``: a revocation mark (read after a revocation
        committed); if the CRL stored by the time this builder's turn comes already lists every
        revocation up to it, that one is returned and none is signed. A burst of revocations
        then costs a build or two, not one full build each after the other."""
        def build(number: int) -> StoredCRL:
            if covering is not None:  # next_crl runs one builder at a time: this is its turn
                stored = self.revocations.current_crl()
                if (stored is not None and stored.revocation_mark is not None
                        and stored.revocation_mark >= covering and not self._due(stored)):
                    raise _AlreadyListed(stored)  # a failed build keeps nothing
            mark = self.revocations.revocation_mark()  # before the entries: never more than them
            return build_crl(
                number, issuer=self.issuer, key=self.key,
                revoked=self.revocations.revoked_certificates(), now=self.clock(),
                lifetime=self.options.cache_duration, idp_url=self.options.idp_url,
                revocation_mark=mark)
        try:
            return self.revocations.next_crl(build)
        except _AlreadyListed as listed:
            return listed.crl

    def current(self) -> StoredCRL:
        current = self.revocations.current_crl()
        if current is None or self._due(current) or self._misses_revocations(current):
            current = self.generate()
        return current

    def at_start(self) -> StoredCRL:
        """The CRL at start-up or reload. step-ca signs a new one at every start; with 100,000
        revocations that is a second and more per start of each instance, so the stored one is
        kept when nothing tells it apart from a new one but its entries' age: it lists every
        revocation recorded (its mark is known and current), ``renewPeriod`` has not passed,
        and this intermediate signed it with this configuration's ``idpURL`` and
        ``cacheDuration``."""
        current = self.revocations.current_crl()
        if (current is None or current.revocation_mark is None or self._due(current)
                or self._misses_revocations(current) or not self._signed_as_configured(current)):
            current = self.generate()
        return current

    def _due(self, crl: StoredCRL) -> bool:
        return self.clock() >= crl.this_update + self.options.renew_period

    def _signed_as_configured(self, stored: StoredCRL) -> bool:
        try:
            crl = x509.load_der_x509_crl(stored.der)
            extensions = crl.extensions
            return (stored.next_update - stored.this_update == self.options.cache_duration
                    and crl.issuer == self.issuer.subject
                    and extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
                    == authority_key_identifier(self.issuer)
                    and extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
                    == issuing_distribution_point(self.options.idp_url)
                    and crl.is_signature_valid(self.issuer.public_key()))
        except (ValueError, TypeError, x509.ExtensionNotFound):  # unreadable: sign a new one
            return False

    def _misses_revocations(self, crl: StoredCRL) -> bool:
        """Was a revocation recorded after ``crl`` read its entries? Unknown (no mark kept by
        the store) counts as no: rebuilding on every ``GET /crl`` would sign a CRL per
        request."""
        return (crl.revocation_mark is not None
                and self.revocations.revocation_mark() > crl.revocation_mark)


class _AlreadyListed(Exception):
    """Not an error: the CRL this build was for exists already."""

    def __init__(self, crl: StoredCRL) -> None:
        super().__init__(crl.number)
        self.crl = crl
