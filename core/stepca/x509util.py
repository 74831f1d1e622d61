"""X.509 helpers shared by the authority and the CLI: SANs, the step provisioner extension,
fingerprints, key files and PEM bundles."""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepca import _der as der

# cryptography's serialization (with its SSH keys and bcrypt) and ciphers are imported in the
# functions that use them: `step certificate inspect` reads ProvisionerExtension from here and
# needs neither (decision 0043)

__all__ = [
    "PROVISIONER_OID",
    "ProvisionerExtension",
    "SANs",
    "certificate_der",
    "dump_chain",
    "encrypt_private_key",
    "fingerprint",
    "generate_key",
    "load_certificates",
    "load_private_key",
    "split_sans",
    "write_private",
]

PROVISIONER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1")

PROVISIONER_TYPES = {0: "NOOP", 1: "JWK", 2: "OIDC", 3: "GCP", 4: "AWS", 5: "Azure", 6: "ACME",
                     7: "X5C", 8: "K8sSA", 9: "SSHPOP", 10: "SCEP", 11: "Nebula"}
KEY_ITERATIONS = 600_000
# cryptography names the string types only in this private enum: the ``_type`` argument of
# NameAttribute is the one way to choose PrintableString for a common name.
_PRINTABLE, _UTF8 = _ASN1Type.PrintableString, _ASN1Type.UTF8String


# -- SANs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SANs:
    """Subject alternative names split by type, as step-ca's ``SplitSANs`` does."""

    dns: tuple[str, ...] = ()
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    def general_names(self) -> list[x509.GeneralName]:
        """The subjectAltName entries in Go's order (crypto/x509 ``marshalSANs``): DNS, email,
        IP, URI."""
        return ([x509.DNSName(n) for n in self.dns] + [x509.RFC822Name(e) for e in self.emails]
                + [x509.IPAddress(i) for i in self.ips]
                + [x509.UniformResourceIdentifier(u) for u in self.uris])

    @classmethod
    def of_csr(cls, csr: x509.CertificateSigningRequest | x509.Certificate) -> SANs:
        """The SANs of a CSR or a certificate (empty when it has none)."""
        try:
            ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls()
        return cls.of_csr_extension(ext)

    @classmethod
    def of_csr_extension(cls, ext: x509.SubjectAlternativeName) -> SANs:
        # One pass by exact type: get_values_for_type per type meant four passes of ABC
        # isinstance checks, ~2% of an issuance. Other name types are not ours to split.
        found: dict[str, list[Any]] = {"dns": [], "ips": [], "emails": [], "uris": []}
        for name in ext:
            field = _SAN_FIELDS.get(type(name))
            if field:
                found[field].append(name.value)
        return cls(**{field: tuple(values) for field, values in found.items()})


_SAN_FIELDS = {x509.DNSName: "dns", x509.IPAddress: "ips", x509.RFC822Name: "emails",
               x509.UniformResourceIdentifier: "uris"}


def _may_be_ip(value: str) -> bool:
    # ip_address raises twice for every DNS name; an address has a colon or only digits and dots.
    return ":" in value or value.replace(".", "").isdigit()


def split_sans(values: Iterable[str]) -> SANs:
    """IP if it parses as one, URI if it has a scheme, email if it has ``@``, else DNS."""
    dns: list[str] = []
    ips: list[Any] = []
    emails: list[str] = []
    uris: list[str] = []
    for value in values:
        if _may_be_ip(value):
            try:
                ips.append(ipaddress.ip_address(value.strip("[]")))
                continue
            except ValueError:
                pass
        if ":" in value and urlparse(value).scheme and "@" not in value.split(":", 1)[0]:
            uris.append(value)
        elif "@" in value:
            emails.append(value)
        else:
            dns.append(value)
    return SANs(tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips)),
                tuple(dict.fromkeys(emails)), tuple(dict.fromkeys(uris)))


# -- the step provisioner extension ----------------------------------------------------------------

@dataclass(frozen=True)
class ProvisionerExtension:
    """OID 1.3.6.1.4.1.37476.9000.64.1: which provisioner authorized a certificate."""

    type: int
    name: str
    credential_id: str
    key_values: Sequence[str] = field(default_factory=tuple)

    @property
    def type_name(self) -> str:
        return PROVISIONER_TYPES.get(self.type, str(self.type))

    def to_extension(self) -> x509.UnrecognizedExtension:
        return self._extension

    @functools.cached_property
    def _extension(self) -> x509.UnrecognizedExtension:
        # built once: provisioners keep one instance for every certificate they authorize
        items = [der.integer(self.type), der.octets(self.name.encode()),
                 der.octets(self.credential_id.encode())]
        if self.key_values:
            items.append(der.sequence(*(der.string(v) for v in self.key_values)))
        return x509.UnrecognizedExtension(PROVISIONER_OID, der.sequence(*items))

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> ProvisionerExtension | None:
        try:
            value = cert.extensions.get_extension_for_oid(PROVISIONER_OID).value
        except x509.ExtensionNotFound:
            return None
        return cls.from_der(value.value)  # type: ignore[attr-defined]

    @classmethod
    def from_der(cls, data: bytes) -> ProvisionerExtension:
        tag, body, _ = der.read(data)
        if tag != 0x30:
            raise ValueError("provisioner extension is not a SEQUENCE")
        items = []
        while body:
            tag, value, body = der.read(body)
            items.append((tag, value))
        if len(items) < 3 or [t for t, _ in items[:3]] != [0x02, 0x04, 0x04]:
            raise ValueError("malformed provisioner extension")
        pairs: list[str] = []
        if len(items) > 3:
            rest = items[3][1]
            while rest:
                _, value, rest = der.read(rest)
                pairs.append(value.decode())
        return cls(int.from_bytes(items[0][1], "big", signed=True), items[1][1].decode(),
                   items[2][1].decode(), tuple(pairs))


# -- fingerprints and PEM --------------------------------------------------------------------------

def fingerprint(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """Lower-case hex SHA-256 of the DER encoding (step's root fingerprint)."""
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM data, or the one DER certificate."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def dump_chain(certs: Iterable[x509.Certificate]) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A PEM or DER CRL; ``ValueError`` if it is neither."""
    if b"-----BEGIN X509 CRL-----" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def certificate_der(cert: x509.Certificate) -> bytes:
    """The DER of ``cert``, kept for the last certificate asked: cryptography encodes a
    certificate anew on every ``public_bytes`` (Go's PrintableString names make that dearer),
    and a newly issued one is wanted twice, by the store and for the response."""
    global _last_der
    last, data = _last_der
    if last is not cert:
        from cryptography.hazmat.primitives import serialization

        data = cert.public_bytes(serialization.Encoding.DER)
        _last_der = (cert, data)  # one assignment: safe to race, a miss only encodes again
    return data


_last_der: tuple[x509.Certificate | None, bytes] = (None, b"")


def pem(cert: x509.Certificate) -> str:
    body = base64.b64encode(certificate_der(cert)).decode("ascii")
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


# -- keys ------------------------------------------------------------------------------------------

def generate_key(kty: str = "EC", *, curve: str = "P-256", size: int = 2048) -> Any:
    kty = kty.upper()
    if kty == "EC":
        curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
        if curve not in curves:
            raise ValueError(f"invalid value '{curve}' for flag '--curve'; options are P-256, "
                             "P-384 or P-521")
        return ec.generate_private_key(curves[curve])
    if kty == "OKP":
        if curve not in ("Ed25519", "P-256"):
            raise ValueError(f"invalid value '{curve}' for flag '--curve'; options are Ed25519")
        return ed25519.Ed25519PrivateKey.generate()
    if kty == "RSA":
        return rsa.generate_private_key(65537, size)
    raise ValueError(f"invalid value '{kty}' for flag '--kty'; options are EC, OKP or RSA")


def encrypt_private_key(key: Any, password: bytes | None) -> bytes:
    """PEM of ``key``: PKCS#8 encrypted with PBES2 (PBKDF2-SHA256, 600,000 rounds, AES-256-CBC),
    or step's plaintext forms (SEC1 for EC, PKCS#1 for RSA, PKCS#8 for Ed25519) without a
    password."""
    from cryptography.hazmat.primitives import serialization

    if password:
        return _encrypted_pkcs8(key, password)
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    if isinstance(key, ed25519.Ed25519PrivateKey):
        fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _encrypted_pkcs8(key: Any, password: bytes) -> bytes:
    # cryptography's PKCS#8 encryption uses 2,048 PBKDF2 rounds; step uses 600,000, so the
    # EncryptedPrivateKeyInfo (RFC 5958, PBES2 of RFC 8018) is assembled here.
    from cryptography.hazmat.primitives import padding, serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, KEY_ITERATIONS).derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    info = der.sequence(
        der.sequence(
            der.oid("1.2.840.113549.1.5.13"),  # PBES2
            der.sequence(
                der.sequence(der.oid("1.2.840.113549.1.5.12"),  # PBKDF2
                             der.sequence(der.octets(salt), der.integer(KEY_ITERATIONS),
                                          der.sequence(der.oid("1.2.840.113549.2.9"),  # SHA-256
                                                       der.NULL))),
                der.sequence(der.oid("2.16.840.1.101.3.4.1.42"), der.octets(iv)))),  # AES-256-CBC
        der.octets(encrypted))
    body = base64.encodebytes(info).decode("ascii").replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END ENCRYPTED PRIVATE KEY-----\n").encode("ascii")


def load_private_key(data: bytes, password: bytes | None) -> Any:
    """Load a PEM key: PKCS#8 (encrypted or not), SEC1, PKCS#1, or legacy ``Proc-Type`` PEM."""
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(data, password)
    except TypeError as exc:
        if password is None:
            raise ValueError("the key is encrypted: a password is required") from exc
        raise ValueError("the key is not encrypted, but a password was given") from exc
    except ValueError as exc:
        raise ValueError("could not decrypt the key: wrong password or not a private key") from exc


def write_private(path: Path | str, data: bytes, *, mode: int = 0o600) -> None:
    """Write atomically (temp file, fsync, rename) with ``mode``; never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def leaf_key_usage(public_key: Any) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for RSA keys (step's default leaf template)."""
    return leaf_key_usage_of(rsa_key=isinstance(public_key, rsa.RSAPublicKey))


def leaf_key_usage_of(*, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=rsa_key, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)


SERVER_CLIENT_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                           ExtendedKeyUsageOID.CLIENT_AUTH])


def ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                         decipher_only=False)


def signature_hash(key: Any) -> hashes.HashAlgorithm | None:
    """The hash to sign with: none for EdDSA, SHA-384/512 for the larger curves."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA512()
    return hashes.SHA256()


def random_serial() -> int:
    """A positive random serial of up to 128 bits, as smallstep's x509util draws them."""
    serial = 0
    while not serial:
        serial = secrets.randbits(128)
    return serial


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of what ``issuer`` signs: its subject key identifier, else one of its key."""
    try:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())


# What Go's encoding/asn1 lets into a PrintableString when it picks the type itself: asterisk and
# ampersand are refused there, so such values become UTF8String.
_GO_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")


def go_name_attribute(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute[str]:
    """``value`` encoded as Go's x509 encodes a ``pkix.Name`` field: PrintableString when every
    character is printable, else UTF8String (cryptography picks UTF8String for most types)."""
    printable = _GO_PRINTABLE.fullmatch(value) is not None
    return x509.NameAttribute(oid, value, _PRINTABLE if printable else _UTF8)


def go_name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    """A Name of one attribute per RDN, each typed as Go would (see ``go_name_attribute``)."""
    return x509.Name([go_name_attribute(oid, value) for oid, value in attributes])


def subject_cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""
