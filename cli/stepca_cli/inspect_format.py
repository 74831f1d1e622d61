"""How ``step certificate inspect`` prints certificates: ``--short``, text and JSON."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from stepca.x509util import ProvisionerExtension, SANs, subject_cn


def _abbreviate(value: str) -> str:
    return value if len(value) <= 8 else f"{value[:4]}...{value[-4:]}"


def key_description(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA P-{key.curve.key_size}" if key.curve.key_size != 521 else "ECDSA P-521"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519 256"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448 456"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.parameters().parameter_numbers().q.bit_length()}"
    return "Unknown"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - any failure means "not self-signed"
        return False


def _name_lines(cn: str, sans: SANs) -> list[str]:
    names = [cn] if cn else []
    for value in [*sans.dns, *map(str, sans.ips), *sans.emails, *sans.uris]:
        if value not in names:
            names.append(value)
    return names


def _sans_of(cert: x509.Certificate) -> SANs:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SANs()
    return SANs(dns=tuple(ext.get_values_for_type(x509.DNSName)),
                ips=tuple(ext.get_values_for_type(x509.IPAddress)),
                emails=tuple(ext.get_values_for_type(x509.RFC822Name)),
                uris=tuple(ext.get_values_for_type(x509.UniformResourceIdentifier)))


def _subject_block(label: str, names: list[str]) -> list[str]:
    if not names:
        return [f"  {label}"]
    lines = [f"  {label}{names[0]}"]
    lines += [" " * 15 + name for name in names[1:]]
    return lines


def short_text(item: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """step's ``--short`` summary of a certificate or CSR."""
    if isinstance(item, x509.CertificateSigningRequest):
        lines = [f"X.509v3 Certificate Signing Request ({key_description(item.public_key())})"]
        lines += _subject_block("Subject:     ", _name_lines(subject_cn(item.subject),
                                                             SANs.of_csr(item)))
        return "\n".join(lines)
    kind = "TLS"
    if _is_ca(item):
        kind = "Root CA" if _self_signed(item) else "Intermediate CA"
    lines = [f"X.509v3 {kind} Certificate ({key_description(item.public_key())}) "
             f"[Serial: {_abbreviate(str(item.serial_number))}]"]
    lines += _subject_block("Subject:     ", _name_lines(subject_cn(item.subject), _sans_of(item)))
    issuer = subject_cn(item.issuer) or item.issuer.rfc4514_string()
    lines.append(f"  Issuer:      {issuer}")
    try:
        provisioner = ProvisionerExtension.from_certificate(item)
    except ValueError:
        provisioner = None
    if provisioner is not None:
        cred = f" [ID: {_abbreviate(provisioner.credential_id)}]" if provisioner.credential_id else ""
        lines.append(f"  Provisioner: {provisioner.name}{cred}")
    lines.append(f"  Valid from:  {item.not_valid_before_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    lines.append(f"          to:  {item.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    return "\n".join(lines)
