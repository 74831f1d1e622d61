"""Revocation checks for ``step certificate verify --verify-crl/--verify-ocsp``.

Both checks trust only what the issuing CA signed: a CRL must be signed by the issuer, an OCSP
response by the issuer or by a responder certificate the issuer gave the OCSP-signing EKU."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from stepca.timeutil import utcnow
from stepca.x509util import load_crl

from stepca_cli.errors import StepError

__all__ = ["check_crl", "check_ocsp", "crl_url", "ocsp_url"]

MAX_CRL_BYTES = 16 * 1024 * 1024
MAX_OCSP_BYTES = 64 * 1024
CLOCK_SKEW = timedelta(minutes=5)


class RevocationError(StepError):
    """The certificate is revoked, or its status could not be established."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"failed to verify certificate: {reason}")


def crl_url(cert: x509.Certificate) -> str:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        points = []
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier) and \
                    name.value.startswith(("http://", "https://")):
                return name.value
    raise RevocationError("the certificate has no CRL distribution point: use --crl-endpoint")


def ocsp_url(cert: x509.Certificate) -> str:
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        access = []
    for description in access:
        if description.access_method == AuthorityInformationAccessOID.OCSP and \
                isinstance(description.access_location, x509.UniformResourceIdentifier):
            return description.access_location.value
    raise RevocationError("the certificate has no OCSP responder: use --ocsp-endpoint")


def _download(method: str, url: str, limit: int, roots: list[x509.Certificate] | None,
              **kwargs: Any) -> bytes:
    """The answer's body; an https:// server is verified with ``roots`` (step's ``--roots``)
    when given, the system's roots otherwise."""
    from stepca_cli import httpclient

    cadata = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in roots or [])
    try:
        response = httpclient.request(method, url, limit=limit, **kwargs,
                                      context=httpclient.tls_context(cadata=cadata or None))
    except httpclient.TransportError as exc:
        raise RevocationError(f"cannot reach {url}: {exc.reason}") from None
    if response.status != 200:
        raise RevocationError(f"{url} answered {response.status} {response.reason}")
    return response.body


def _signed_by(issuer: x509.Certificate, signature: bytes, data: bytes,
               hash_algorithm: hashes.HashAlgorithm | None) -> bool:
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and hash_algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and hash_algorithm is not None:
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def check_crl(cert: x509.Certificate, issuer: x509.Certificate, url: str, *,
              roots: list[x509.Certificate] | None = None) -> None:
    """Raise ``RevocationError`` unless the issuer's current CRL at ``url`` does not list
    ``cert``."""
    data = _download("GET", url, MAX_CRL_BYTES, roots)
    try:
        crl = load_crl(data)
    except ValueError:
        raise RevocationError(f"{url} did not send a CRL") from None
    if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
        raise RevocationError(f"the CRL at {url} is not signed by the certificate's issuer")
    now = utcnow()
    if crl.next_update_utc is not None and crl.next_update_utc + CLOCK_SKEW < now:
        raise RevocationError(f"the CRL at {url} is out of date (next update "
                              f"{crl.next_update_utc.isoformat()})")
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is not None:
        raise RevocationError(f"certificate has been revoked according to the CRL at {url}"
                              + _reason_suffix(entry.extensions))


def check_ocsp(cert: x509.Certificate, issuer: x509.Certificate, url: str, *,
               roots: list[x509.Certificate] | None = None) -> None:
    """Raise ``RevocationError`` unless the OCSP responder at ``url`` says ``cert`` is good."""
    nonce = os.urandom(16)
    request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
               .add_extension(x509.OCSPNonce(nonce), critical=False).build())
    data = _download("POST", url, MAX_OCSP_BYTES, roots,
                     body=request.public_bytes(serialization.Encoding.DER),
                     headers={"Content-Type": "application/ocsp-request"})
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise RevocationError(f"{url} did not send an OCSP response") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationError(f"the OCSP responder at {url} answered "
                              f"{response.response_status.name.lower()}")
    _check_responder(response, issuer, url)
    if (response.serial_number != cert.serial_number
            or response.issuer_key_hash != request.issuer_key_hash):
        raise RevocationError(f"the OCSP responder at {url} answered for another certificate")
    _check_nonce(response, nonce, url)
    now = utcnow()
    if response.this_update_utc - CLOCK_SKEW > now or (
            response.next_update_utc is not None and response.next_update_utc + CLOCK_SKEW < now):
        raise RevocationError(f"the OCSP response from {url} is not current")
    if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        reason = response.revocation_reason
        raise RevocationError(f"certificate has been revoked according to OCSP {url}"
                              + (f" (reason: {reason.name})" if reason else ""))
    if response.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise RevocationError(f"the OCSP responder at {url} does not know the certificate")


def _check_responder(response: ocsp.OCSPResponse, issuer: x509.Certificate, url: str) -> None:
    data, signature = response.tbs_response_bytes, response.signature
    if _signed_by(issuer, signature, data, response.signature_hash_algorithm):
        return
    for delegate in response.certificates:  # a responder the issuer authorized (RFC 6960 §4.2.2.2)
        if delegate.issuer != issuer.subject or not _is_ocsp_signer(delegate):
            continue
        try:
            delegate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if _signed_by(delegate, signature, data, response.signature_hash_algorithm):
            return
    raise RevocationError(f"the OCSP response from {url} is not signed by the certificate's "
                          "issuer or a responder it authorized")


def _is_ocsp_signer(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usages


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes, url: str) -> None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return  # responders may answer from a cache without a nonce (RFC 8954)
    if echoed != nonce:
        raise RevocationError(f"the OCSP response from {url} carries another request's nonce")


def _reason_suffix(extensions: x509.Extensions) -> str:
    try:
        return f" (reason: {extensions.get_extension_for_class(x509.CRLReason).value.reason.name})"
    except x509.ExtensionNotFound:
        return ""
