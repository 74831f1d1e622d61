"""Building certificates from the intermediate: subject, extensions, validity and signature.

The ``Authority`` decides what may be issued; a ``CertificateIssuer`` only builds and signs it,
the same way for issuance, renewal, rekey and the CA's own TLS certificate."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from stepca.config import Config
from stepca.errors import BadRequest, Forbidden, Unauthorized
from stepca.provisioner import Claims
from stepca.timeutil import format_duration, parse_time_or_duration
from stepca.x509util import (
    SERVER_CLIENT_EKU,
    SANs,
    authority_key_identifier,
    generate_key,
    go_name_attribute,
    leaf_key_usage_of,
    random_serial,
    signature_hash,
    split_sans,
)

__all__ = ["CertificateIssuer"]

TLS_CERT_LIFETIME = timedelta(hours=24)
TLS_CERT_BACKDATE = timedelta(minutes=1)  # step-ca's, whatever authority.backdate says
VERIFIED_CACHE_SIZE = 4096  # certificates whose signature verified (issued_here)
# authority.template's attributes in the order Go's pkix.Name.ToRDNSequence writes them: these
# before the common name, serialNumber after it.
_TEMPLATE_DN_BEFORE_CN = {
    "country": NameOID.COUNTRY_NAME,
    "province": NameOID.STATE_OR_PROVINCE_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "streetAddress": NameOID.STREET_ADDRESS,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
}
_TEMPLATE_DN_AFTER_CN = {"serialNumber": NameOID.SERIAL_NUMBER}


class CertificateIssuer:
    """The intermediate and its key, with ca.json's ``backdate``, ``authority.template`` and
    revocation pointers: everything that is the same for every certificate issued."""

    def __init__(self, config: Config, *, intermediates: tuple[x509.Certificate, ...],
                 signer: Any, backdate: timedelta, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.intermediates = intermediates
        self.signer = signer
        self.backdate = backdate
        self.clock = clock
        # read once: the issuer's Name is rebuilt in Python on every access, and both are fixed
        self._issuer_name = intermediates[0].subject
        self._signature_hash = signature_hash(signer)
        self._aki_extension = _extension(authority_key_identifier(intermediates[0]))
        # Certificates whose signature verified, by their exact DER (a Certificate hashes and
        # compares its DER): a client renewing on a kept-alive connection presents the same
        # one each time, and the verification costs more than the rest of the check.
        self._verified: OrderedDict[x509.Certificate, None] = OrderedDict()
        self._verified_lock = threading.Lock()  # a worker may run threads (server.threads)

    def issued_here(self, certificate: x509.Certificate) -> None:
        """``Unauthorized`` unless the intermediate signed ``certificate``."""
        if certificate in self._verified:
            return
        try:
            certificate.verify_directly_issued_by(self.intermediates[0])
        except (ValueError, TypeError, InvalidSignature):
            raise Unauthorized("certificate was not issued by this certificate authority") \
                from None
        with self._verified_lock:
            self._verified[certificate] = None
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)  # the oldest

    def validity(self, claims: Claims, not_before: str | None,
                 not_after: str | None) -> tuple[datetime, datetime]:
        """The requested (or default) validity, checked against ``claims``."""
        now = self.clock().replace(microsecond=0)
        start = _requested_time("notBefore", not_before, now) if not_before else now
        try:
            end = (_requested_time("notAfter", not_after, start) if not_after
                   else start + claims.default_tls_duration)
        except OverflowError:
            raise BadRequest("notBefore: a certificate starting then would end after the year "
                             "9999") from None
        if not not_before:
            start -= self.backdate
        start, end = start.replace(microsecond=0), end.replace(microsecond=0)
        if end < now:
            raise BadRequest("notAfter cannot be in the past")
        if end < start:
            raise BadRequest("notAfter cannot be before notBefore")
        duration = end - start
        if duration < claims.min_tls_duration:
            raise Forbidden(f"requested duration of {format_duration(duration)} is less than "
                            f"the authorized minimum certificate duration of "
                            f"{format_duration(claims.min_tls_duration)}")
        if duration > claims.max_tls_duration + self.backdate:
            raise Forbidden(f"requested duration of {format_duration(duration)} is more than "
                            f"the authorized maximum certificate duration of "
                            f"{format_duration(claims.max_tls_duration + self.backdate)}")
        return start, end

    def issue(self, public_key: Any, *, subject: str, sans: SANs, not_before: datetime,
              not_after: datetime, extra: list[x509.ExtensionType]) -> x509.Certificate:
        """A leaf for ``public_key`` (step's default leaf template, ``authority.template``'s
        subject attributes and the revocation pointers), ``extra`` last."""
        return self._leaf(public_key, self._subject(subject), sans, not_before, not_after,
                          self._revocation_extensions, [_extension(value) for value in extra])

    def _leaf(self, public_key: Any, name: x509.Name, sans: SANs, not_before: datetime,
              not_after: datetime, pointers: tuple[x509.Extension[Any] | None, ...],
              extra: list[x509.Extension[Any]]) -> x509.Certificate:
        # in the order Go's x509.CreateCertificate writes a template's extensions: key usage,
        # EKU, SKI, AKI, OCSP pointer, SANs, CRL distribution point, then the extra ones
        ocsp, crl = pointers
        extensions = [_KEY_USAGE_EXTENSIONS[isinstance(public_key, rsa.RSAPublicKey)],
                      _EKU_EXTENSION,
                      _extension(x509.SubjectKeyIdentifier.from_public_key(public_key)),
                      self._aki_extension]
        if ocsp is not None:
            extensions.append(ocsp)
        names = sans.general_names()
        if names:  # critical when the subject is empty (RFC 5280 4.2.1.6)
            extensions.append(_extension(x509.SubjectAlternativeName(names),
                                         critical=not name.rdns))
        if crl is not None:
            extensions.append(crl)
        extensions += extra
        try:
            return self.sign(name, public_key, not_before, not_after, extensions)
        except ValueError as exc:
            raise BadRequest(f"cannot issue this certificate: {exc}") from None

    def reissue(self, old: x509.Certificate, key: Any, *, rekey: bool) -> x509.Certificate:
        """``old`` again with a new serial and validity starting now, the same lifetime; with
        ``rekey``, for another key. As step-ca's renewal through Go's x509: the AKI (and a new
        SKI) first, then every other extension of ``old`` in its order."""
        lifetime = old.not_valid_after_utc - old.not_valid_before_utc - self.backdate
        now = self.clock().replace(microsecond=0)
        kept = [ext for ext in old.extensions
                if not isinstance(ext.value, x509.AuthorityKeyIdentifier)
                and not (rekey and isinstance(ext.value, x509.SubjectKeyIdentifier))]
        first = [self._aki_extension]
        if not any(isinstance(ext.value, x509.SubjectKeyIdentifier) for ext in kept):
            first.insert(0, _extension(x509.SubjectKeyIdentifier.from_public_key(key)))
        return self.sign(old.subject, key, now - self.backdate, now + lifetime, first + kept)

    def sign(self, subject: x509.Name, public_key: Any, not_before: datetime,
             not_after: datetime, extensions: list[x509.Extension[Any]]) -> x509.Certificate:
        """A certificate from the intermediate, built in one constructor call: the fluent
        setters copy the builder once per extension."""
        if len({extension.oid for extension in extensions}) != len(extensions):
            raise AssertionError("an extension appears twice")  # a bug here, not a client's
        return x509.CertificateBuilder(
            issuer_name=self._issuer_name, subject_name=subject,
            public_key=public_key, serial_number=random_serial(), not_valid_before=not_before,
            not_valid_after=not_after, extensions=extensions,
        ).sign(self.signer, self._signature_hash)

    def tls_certificate(self) -> tuple[Any, x509.Certificate]:
        """A fresh key and certificate for the CA's own HTTPS listener, as step-ca makes it:
        CN = ``commonName`` and nothing from ``authority.template``, SANs = ``dnsNames``, no
        revocation pointers, from a minute ago to 24 hours from now."""
        key = generate_key("EC")
        now = self.clock().replace(microsecond=0)
        name = x509.Name([go_name_attribute(NameOID.COMMON_NAME, self.config.common_name)])
        cert = self._leaf(key.public_key(), name, split_sans(self.config.dns_names),
                          now - TLS_CERT_BACKDATE, now + TLS_CERT_LIFETIME, (None, None), [])
        return key, cert

    @functools.cached_property
    def _revocation_extensions(self) -> tuple[x509.Extension[Any] | None,
                                              x509.Extension[Any] | None]:
        """The OCSP responder (AIA) and CRL distribution point of certificates issued now, each
        None unless enabled."""
        ocsp = crl = None
        if self.config.ocsp.enabled:
            ocsp = _extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(self.config.ocsp.url))]))
        if self.config.crl.enabled:
            crl = _extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(self.config.crl.idp_url)],
                relative_name=None, reasons=None, crl_issuer=None)]))
        return ocsp, crl

    def _template_rdns(self, keys: Mapping[str, x509.ObjectIdentifier],
                       ) -> tuple[x509.RelativeDistinguishedName, ...]:
        # Go's pkix.Name puts the values of one field in one (multi-valued) RDN
        template: Mapping[str, Any] = self.config.authority.get("template") or {}
        rdns = []
        for key, oid in keys.items():
            values = template.get(key)
            values = [values] if isinstance(values, str) else values or []
            if values:
                rdns.append(x509.RelativeDistinguishedName(
                    [go_name_attribute(oid, str(value)) for value in values]))
        return tuple(rdns)

    @functools.cached_property
    def _template_subject(self) -> tuple[tuple[x509.RelativeDistinguishedName, ...],
                                         str, tuple[x509.RelativeDistinguishedName, ...]]:
        """What ``authority.template`` puts before the common name, its common name, and what
        it puts after."""
        template = self.config.authority.get("template") or {}
        return (self._template_rdns(_TEMPLATE_DN_BEFORE_CN), str(template.get("commonName") or ""),
                self._template_rdns(_TEMPLATE_DN_AFTER_CN))

    def _subject(self, common_name: str) -> x509.Name:
        before, template_cn, after = self._template_subject
        cn = common_name or template_cn
        if not cn:
            return x509.Name([*before, *after])
        return x509.Name([*before, x509.RelativeDistinguishedName(
            [go_name_attribute(NameOID.COMMON_NAME, cn)]), *after])


def _requested_time(field: str, text: str, relative_to: datetime) -> datetime:
    """``notBefore``/``notAfter`` of a request: whatever is odd about it is the client's 400."""
    try:
        return parse_time_or_duration(text, relative_to=relative_to)
    except ValueError as exc:
        raise BadRequest(f"{field}: {exc}") from None


def _extension(value: x509.ExtensionType, *, critical: bool = False) -> x509.Extension[Any]:
    return x509.Extension(value.oid, critical, value)


_EKU_EXTENSION = _extension(SERVER_CLIENT_EKU)
_KEY_USAGE_EXTENSIONS = {rsa_key: _extension(leaf_key_usage_of(rsa_key=rsa_key), critical=True)
                         for rsa_key in (False, True)}  # built once: is the key RSA?
