"""How ``step certificate inspect`` prints certificates and CSRs.

Three forms, each following what step itself prints:

* the default text: smallstep/certinfo's openssl-like layout (Go names for algorithms, hex dumps
  15 bytes a line for keys and 18 for signatures, step's own extensions decoded);
* ``--short``: certinfo's one-screen summary;
* ``--format json``: the schema of smallstep/zcrypto's ``Certificate.MarshalJSON`` (and, for a
  CSR, the field names Go's encoder gives zcrypto's ``CertificateRequest`` struct).

Everything is read through ``cryptography``; the only DER walked by hand is inside byte strings
cryptography hands over undecoded (unknown extensions, other names, the SPKI bit string).
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import certificate_transparency as ct
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID
from stepca import _der as der
from stepca.x509util import PROVISIONER_OID, ProvisionerExtension

Item = x509.Certificate | x509.CertificateSigningRequest

# -- OIDs and names step knows ---------------------------------------------------------------------

_RSA_PSS = "1.2.840.113549.1.1.10"
# Go's crypto/x509 names for the signature algorithms it knows (RSA-PSS is named by its hash).
_GO_SIGNATURE_NAMES = {
    "1.2.840.113549.1.1.2": "MD2-RSA", "1.2.840.113549.1.1.4": "MD5-RSA",
    "1.2.840.113549.1.1.5": "SHA1-RSA", "1.3.14.3.2.29": "SHA1-RSA",
    "1.2.840.113549.1.1.11": "SHA256-RSA", "1.2.840.113549.1.1.12": "SHA384-RSA",
    "1.2.840.113549.1.1.13": "SHA512-RSA", "1.2.840.10040.4.3": "DSA-SHA1",
    "2.16.840.1.101.3.4.3.2": "DSA-SHA256", "1.2.840.10045.4.1": "ECDSA-SHA1",
    "1.2.840.10045.4.3.2": "ECDSA-SHA256", "1.2.840.10045.4.3.3": "ECDSA-SHA384",
    "1.2.840.10045.4.3.4": "ECDSA-SHA512", "1.3.101.112": "Ed25519",
}
# certinfo names post-quantum algorithms Go cannot parse (FIPS 204/205 OIDs 2.16.840.1.101.3.4.3.x).
_PQ_NAMES = {
    **{f"2.16.840.1.101.3.4.3.{17 + i}": f"ML-DSA-{n}" for i, n in enumerate((44, 65, 87))},
    **{f"2.16.840.1.101.3.4.3.{32 + i}": f"HashML-DSA-{n}" for i, n in enumerate((44, 65, 87))},
    **{f"2.16.840.1.101.3.4.3.{20 + i}": f"SLH-DSA-{n}" for i, n in enumerate(
        f"{h}-{s}{v}" for h in ("SHA2", "SHAKE") for s in (128, 192, 256) for v in "sf")},
    **{f"2.16.840.1.101.3.4.3.{35 + i}": f"HashSLH-DSA-{n}" for i, n in enumerate(
        f"{h}-{s}{v}" for h in ("SHA2", "SHAKE") for s in (128, 192, 256) for v in "sf")},
}
_GO_CURVES = {"secp224r1": "P-224", "secp256r1": "P-256", "secp384r1": "P-384",
              "secp521r1": "P-521"}

_EMAIL_ATTR = "1.2.840.113549.1.9.1"
_DC_ATTR = "0.9.2342.19200300.100.1.25"
_UID_ATTR = "0.9.2342.19200300.100.1.1"
# certinfo's DN labels (anything else under 2.5.4 prints as UnknownOID=<oid>).
_CERTINFO_DN = {"2.5.4.3": "CN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L",
                "2.5.4.8": "ST", "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU",
                "2.5.4.17": "POSTALCODE", _EMAIL_ATTR: "emailAddress", _DC_ATTR: "DC",
                _UID_ATTR: "UID"}

_KEY_USAGES = [("digital_signature", "Digital Signature"),
               ("content_commitment", "Content Commitment"),
               ("key_encipherment", "Key Encipherment"), ("data_encipherment", "Data Encipherment"),
               ("key_agreement", "Key Agreement"), ("key_cert_sign", "Certificate Sign"),
               ("crl_sign", "CRL Sign"), ("encipher_only", "Encipher Only"),
               ("decipher_only", "Decipher Only")]

_EKU_ANY, _EKU_EK = "2.5.29.37.0", "2.23.133.8.1"
_EKU_BASE = {_EKU_ANY: "Any Usage", "1.3.6.1.5.5.7.3.1": "Server Authentication",
             "1.3.6.1.5.5.7.3.2": "Client Authentication", "1.3.6.1.5.5.7.3.3": "Code Signing",
             "1.3.6.1.5.5.7.3.4": "E-mail Protection", "1.3.6.1.5.5.7.3.5": "IPSec End System",
             "1.3.6.1.5.5.7.3.6": "IPSec Tunnel", "1.3.6.1.5.5.7.3.7": "IPSec User",
             "1.3.6.1.5.5.7.3.8": "Time Stamping", "1.3.6.1.5.5.7.3.9": "OCSP Signing"}
_EKU_GO_EXTRA = {"1.3.6.1.4.1.311.10.3.3": "Microsoft Server Gated Crypto",
                 "2.16.840.1.113730.4.1": "Netscape Server Gated Crypto",
                 "1.3.6.1.4.1.311.2.1.22": "Microsoft Commercial Code Signing",
                 "1.3.6.1.4.1.311.61.1.1": "Microsoft Kernel Code Signing"}

_NS_COMMENT = "2.16.840.1.113730.1.13"
_STEP_RA = "1.3.6.1.4.1.37476.9000.64.2"
_STEP_ENDPOINT = "1.3.6.1.4.1.37476.9000.64.3"
_STEP_DEVICE = "1.3.6.1.4.1.37476.9000.64.4"
_SCT_LIST = "1.3.6.1.4.1.11129.2.4.2"
_CT_POISON = "1.3.6.1.4.1.11129.2.4.3"
_YUBICO = "1.3.6.1.4.1.41482.3."
_SIGSTORE_TEXT = {"1.3.6.1.4.1.57264.1.1": "Sigstore OIDC Issuer",
                  "1.3.6.1.4.1.57264.1.2": "Sigstore GitHub Workflow Trigger",
                  "1.3.6.1.4.1.57264.1.3": "Sigstore GitHub Workflow SHA Hash",
                  "1.3.6.1.4.1.57264.1.4": "Sigstore GitHub Workflow Name",
                  "1.3.6.1.4.1.57264.1.5": "Sigstore GitHub Workflow Repository",
                  "1.3.6.1.4.1.57264.1.6": "Sigstore GitHub Workflow Ref"}
_TPM_ATTRS = {"2.23.133.2.1": "TPM Manufacturer", "2.23.133.2.2": "TPM Model",
              "2.23.133.2.3": "TPM Version"}
_TPM_SPECIFICATION = "2.23.133.2.16"
_PERMANENT_ID, _HW_MODULE = "1.3.6.1.5.5.7.8.3", "1.3.6.1.5.5.7.8.4"
_UPN, _SIGSTORE_ID = "1.3.6.1.4.1.311.20.2.3", "1.3.6.1.4.1.57264.1.7"

_STEP_PROVISIONER_TYPES = ["NOOP", "JWK", "OIDC", "GCP", "AWS", "Azure", "ACME", "X5C", "K8sSA",
                           "SSHPOP", "SCEP", "Nebula"]
_STEP_ENDPOINT_KINDS = ["Unknown", "Device", "Workload", "People", "Agent", "Account"]

_PAD12, _PAD16, _PAD20 = " " * 12, " " * 16, " " * 20


class FormatError(ValueError):
    """The certificate parses but a part step decodes strictly does not."""


# -- small helpers ---------------------------------------------------------------------------------

def _is_dsa(key: object) -> bool:
    # By class name: cryptography >= 51 warns on any use of its DSA classes, yet still parses
    # the DSA certificates that step inspects.
    return type(key).__name__ == "DSAPublicKey"


def _int_bytes(value: int) -> bytes:
    """Go's ``big.Int.Bytes()``: big-endian magnitude without leading zeros (empty for 0)."""
    value = abs(value)
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _hex_dump(data: bytes, per_line: int, indent: int) -> list[str]:
    """certinfo's dumps: lower-case pairs joined by ':', a ':' also ending every full line."""
    pairs = [f"{b:02x}" for b in data]
    lines = []
    for start in range(0, len(pairs), per_line):
        tail = ":" if start + per_line < len(pairs) else ""
        lines.append(" " * indent + ":".join(pairs[start:start + per_line]) + tail)
    return lines


def _prefixed_hex(data: bytes) -> str:
    """Go's ``%#x`` of a byte slice: nothing at all when it is empty."""
    return "0x" + data.hex() if data else ""


def _upper_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _go_date(value: datetime.datetime) -> str:
    """Go's ``Jan 2 15:04:05 2006 MST`` for a UTC time."""
    return f"{value:%b} {value.day} {value:%H:%M:%S} {value.year:04d} UTC"


def _rfc3339(value: datetime.datetime) -> str:
    return f"{value.year:04d}-{value:%m-%dT%H:%M:%S}Z"


def _go_ip(value: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Go prints IPv4-mapped IPv6 addresses in dotted form."""
    if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
        return str(value.ipv4_mapped)
    return str(value)


def _sanitize(data: bytes) -> tuple[str, bool]:
    """certinfo's view of raw bytes: UTF-8 runes, each invalid byte or non-printable rune shown
    as '.' (Go decodes one invalid byte at a time); also whether anything was replaced."""
    out, index, replaced = [], 0, False
    while index < len(data):
        lead = data[index]
        size = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else \
            4 if lead >> 3 == 30 else 0
        try:
            char = data[index:index + size].decode("utf-8") if size else ""
        except UnicodeDecodeError:
            char = ""
        if len(char) != 1:
            out.append(".")
            replaced, index = True, index + 1
            continue
        printable = (char.isprintable() or char == " ") and char != "\ufffd"
        out.append(char if printable else ".")
        replaced, index = replaced or not printable, index + size
    return "".join(out), replaced


def _go_runes(data: bytes) -> str:
    return _sanitize(data)[0]


def _der_elements(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each element in a run of DER."""
    while data:
        tag, body, data = der.read(data)
        yield tag, body


def _decode_oid(body: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OBJECT IDENTIFIER")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


_DER_STRINGS = {0x0C, 0x12, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E}


def _decode_string(tag: int, body: bytes) -> str:
    if tag not in _DER_STRINGS:
        raise ValueError("not a string")
    if tag == 0x1E:
        return body.decode("utf-16-be")
    if tag == 0x1C:
        return body.decode("utf-32-be")
    return body.decode("utf-8" if tag == 0x0C else "latin-1")


def _single(data: bytes) -> tuple[int, bytes]:
    tag, body, rest = der.read(data)
    if rest:
        raise ValueError("trailing data")
    return tag, body


def _raw_extension_value(ext: x509.Extension[Any]) -> bytes:
    value = ext.value
    if isinstance(value, x509.UnrecognizedExtension):
        return value.value
    try:
        return value.public_bytes()
    except (NotImplementedError, ValueError, TypeError):
        return b""


def _public_key(item: Item) -> Any:
    try:
        return item.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None


def _tbs_fields(item: Item) -> list[bytes]:
    """The whole DER of each field of the to-be-signed part, as cryptography hands it over."""
    _, body = _single(_tbs(item))
    fields = []
    while body:
        _, _, rest = der.read(body)
        fields.append(body[:len(body) - len(rest)])
        body = rest
    return fields


def _raw_field(item: Item, certificate_index: int, request_index: int) -> bytes:
    """A TBS field by position: certificates may start with an explicit [0] version."""
    try:
        fields = _tbs_fields(item)
        if isinstance(item, x509.CertificateSigningRequest):
            return fields[request_index]
        return fields[certificate_index + (1 if fields[0][0] == 0xA0 else 0)]
    except (ValueError, IndexError):
        return b""


def _spki_der(item: Item) -> bytes:
    """The SubjectPublicKeyInfo exactly as encoded (also for keys cryptography cannot load)."""
    return _raw_field(item, 5, 2)


def _raw_subject(item: Item) -> bytes:
    return _raw_field(item, 4, 1) or item.subject.public_bytes()


def _spki_bits(item: Item) -> bytes:
    """The subjectPublicKey BIT STRING's bytes (what Go keeps for keys it does not know)."""
    try:
        tag, body = _single(_spki_der(item))
        elements = list(_der_elements(body))
        bits = elements[1][1] if tag == 0x30 and len(elements) == 2 else b""
        return bits[1:]
    except (ValueError, IndexError):
        return b""


def _go_curve(key: ec.EllipticCurvePublicKey) -> str:
    return _GO_CURVES.get(key.curve.name, key.curve.name)


# cryptography's serialization (with its SSH keys and bcrypt) is imported where it is used: the
# default and short forms of most certificates never need it (decision 0043)
def _der(item: Item) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return item.public_bytes(Encoding.DER)


def _raw_public_key(key: ed25519.Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _tbs(item: Item) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.tbs_certificate_bytes
    return item.tbs_certrequest_bytes


def _signed_by(item: Item, key: Any, *, allow_sha1: bool) -> bool:
    """Whether ``key`` verifies the signature on ``item`` (Go refuses MD5/SHA-1 for this)."""
    try:
        digest = item.signature_hash_algorithm
        if not allow_sha1 and isinstance(digest, (hashes.MD5, hashes.SHA1)):
            return False
        if isinstance(key, rsa.RSAPublicKey) and digest is not None:
            key.verify(item.signature, _tbs(item), item.signature_algorithm_parameters, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(item.signature, _tbs(item), ec.ECDSA(digest))
        elif _is_dsa(key) and digest is not None:
            key.verify(item.signature, _tbs(item), digest)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(item.signature, _tbs(item))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _extensions(item: Item) -> list[x509.Extension[Any]]:
    try:
        return list(item.extensions)
    except (ValueError, x509.DuplicateExtension) as exc:
        if isinstance(item, x509.CertificateSigningRequest):
            return []  # Go skips CSR attributes it cannot read (an empty extension request)
        raise FormatError(f"error parsing extensions: {exc}") from None


def _extension(item: Item, oid: x509.ObjectIdentifier) -> Any:
    for ext in _extensions(item):
        if ext.oid == oid:
            return ext.value
    return None


def _go_common_name(name: x509.Name) -> str:
    """Go's ``Name.CommonName``: the last CN wins."""
    values = [a.value for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)
              if isinstance(a.value, str)]
    return values[-1] if values else ""


def signature_name(item: Item) -> str:
    """The signature algorithm as Go names it; unknown ones by certinfo's name or OID."""
    dotted = item.signature_algorithm_oid.dotted_string
    if dotted == _RSA_PSS:
        try:
            digest = item.signature_hash_algorithm
        except UnsupportedAlgorithm:
            digest = None
        if isinstance(digest, (hashes.SHA256, hashes.SHA384, hashes.SHA512)):
            return f"{digest.name.upper()}-RSAPSS"
        return dotted
    return _GO_SIGNATURE_NAMES.get(dotted) or _PQ_NAMES.get(dotted, dotted)


def _unknown_algorithm(item: Item) -> str:
    dotted = item.public_key_algorithm_oid.dotted_string
    return _PQ_NAMES.get(dotted, dotted)


def key_description(key: Any, item: Item | None = None) -> str:
    """``--short``'s key: ``<Go algorithm> <size or curve>``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {_go_curve(key)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {(key.key_size + 7) // 8 * 8}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519 256"
    if _is_dsa(key):
        return f"DSA {key.parameters().parameter_numbers().q.bit_length()}"
    return _unknown_algorithm(item) if item is not None else "Unknown"


def _sans(item: Item) -> x509.SubjectAlternativeName | None:
    value = _extension(item, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    return value if isinstance(value, x509.SubjectAlternativeName) else None


def _san_values(item: Item) -> tuple[list[str], list[str], list[str], list[str]]:
    """(DNS, IP, email, URI) strings of the SAN extension."""
    sans = _sans(item)
    if sans is None:
        return [], [], [], []
    return (list(sans.get_values_for_type(x509.DNSName)),
            [_go_ip(ip) for ip in sans.get_values_for_type(x509.IPAddress)],
            list(sans.get_values_for_type(x509.RFC822Name)),
            list(sans.get_values_for_type(x509.UniformResourceIdentifier)))


# -- --short ---------------------------------------------------------------------------------------

def _abbreviate(value: str) -> str:
    return value if len(value) <= 8 else f"{value[:4]}...{value[-4:]}"


def _short_subject(item: Item) -> list[str]:
    common_name = _go_common_name(item.subject)
    dns, ips, emails, uris = _san_values(item)
    names = [n for n in [*dns, *ips, *emails, *uris] if n != common_name]
    if common_name:
        names.insert(0, common_name)
    if not names:
        return ["  Subject: "]
    return [f"  Subject:     {names[0]}"] + [" " * 15 + name for name in names[1:]]


def _is_root(cert: x509.Certificate) -> bool:
    """Go's ``CheckSignatureFrom(itself)`` on a CA: key usage allows signing certificates and
    the self-signature verifies (SHA-1 ones do not count)."""
    usage = _extension(cert, ExtensionOID.KEY_USAGE)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        return False
    return _signed_by(cert, _public_key(cert), allow_sha1=False)


def _is_ca(cert: x509.Certificate) -> bool:
    value = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    return isinstance(value, x509.BasicConstraints) and value.ca


def _provisioner(cert: x509.Certificate) -> ProvisionerExtension | None:
    try:
        return ProvisionerExtension.from_certificate(cert)
    except (ValueError, UnicodeDecodeError, FormatError):
        return None


def short_text(item: Item) -> str:
    """step's ``--short`` summary of a certificate or CSR (without the final newline)."""
    algorithm = key_description(_public_key(item), item)
    if isinstance(item, x509.CertificateSigningRequest):
        return "\n".join([f"X.509v3 Certificate Signing Request ({algorithm})",
                          *_short_subject(item)])
    kind = "TLS"
    if _is_ca(item):
        kind = "Root CA" if _is_root(item) else "Intermediate CA"
    serial = _abbreviate(str(item.serial_number))
    lines = [f"X.509v3 {kind} Certificate ({algorithm}) [Serial: {serial}]",
             *_short_subject(item), f"  Issuer:      {_go_common_name(item.issuer)}"]
    provisioner = _provisioner(item)
    if provisioner is not None:
        credential = _abbreviate(provisioner.credential_id)
        lines.append(f"  Provisioner: {provisioner.name}"
                     + (f" [ID: {credential}]" if credential else ""))
    lines.append(f"  Valid from:  {_rfc3339(item.not_valid_before_utc)}")
    lines.append(f"          to:  {_rfc3339(item.not_valid_after_utc)}")
    return "\n".join(lines)


# -- the default text ------------------------------------------------------------------------------

def dn(name: x509.Name) -> str:
    """certinfo's DN: ``C=..,O=..,CN=..`` in DER order, comma-separated without spaces."""
    parts = []
    for attribute in name:
        dotted = attribute.oid.dotted_string
        label = _CERTINFO_DN.get(dotted)
        if label is not None:
            parts.append(f"{label}={attribute.value}")
        elif dotted.startswith("2.5.4.") and dotted.count(".") == 3:
            parts.append(f"UnknownOID={dotted}")
        elif isinstance(attribute.value, str):
            parts.append(f"{dotted}={attribute.value}")
        else:
            parts.append(f"UnknownOID={dotted}")
    return ",".join(parts)


def _key_lines(item: Item) -> list[str]:
    key = _public_key(item)
    head = f"{_PAD12}Public Key Algorithm: "
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return [head + "RSA", f"{_PAD16}Public-Key: ({numbers.n.bit_length()} bit)",
                f"{_PAD16}Modulus:", *_hex_dump(_int_bytes(numbers.n), 15, 20),
                f"{_PAD16}Exponent: {numbers.e} ({numbers.e:#x})"]
    if _is_dsa(key):
        params = key.parameters().parameter_numbers()
        lines = [head + "DSA"]
        for label, value in (("pub", key.public_numbers().y), ("P", params.p), ("Q", params.q),
                             ("G", params.g)):
            lines += [f"{_PAD16}{label}:", *_hex_dump(_int_bytes(value), 15, 20)]
        return lines
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return [head + "ECDSA", f"{_PAD16}Public-Key: ({key.curve.key_size} bit)",
                f"{_PAD16}X:", *_hex_dump(_int_bytes(numbers.x), 15, 20),
                f"{_PAD16}Y:", *_hex_dump(_int_bytes(numbers.y), 15, 20),
                f"{_PAD16}Curve: {_go_curve(key)}"]
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = _raw_public_key(key)
        # certinfo reports the key's length in bytes here, labelled "bit".
        return [head + "Ed25519", f"{_PAD16}Public-Key: ({len(raw)} bit)",
                *_hex_dump(raw, 15, 20)]
    lines = [head + _unknown_algorithm(item)]
    if isinstance(item, x509.Certificate):
        lines.append(f"{_PAD16}Public-Key:")
    return lines + [f"{_PAD16}Raw Bytes:", *_hex_dump(_spki_bits(item), 15, 20)]


def _subject_lines(item: Item) -> list[str]:
    subject = dn(item.subject)
    return [f"        Subject:{' ' + subject if subject else ''}",
            "        Subject Public Key Info:", *_key_lines(item)]


def _header(name: str, ext: x509.Extension[Any]) -> str:
    return f"{_PAD12}{name}:{' critical' if ext.critical else ''}"


def _key_usage_names(usage: x509.KeyUsage) -> list[str]:
    names = []
    for attribute, label in _KEY_USAGES:
        try:
            if getattr(usage, attribute):
                names.append(label)
        except ValueError:  # encipher/decipher only are unreadable without key agreement
            pass
    return names


def _key_usage_lines(ext: x509.Extension[Any]) -> list[str]:
    names = _key_usage_names(ext.value)
    return [_header("X509v3 Key Usage", ext), _PAD16 + (", ".join(names) if names else "None")]


def _basic_constraints_lines(ext: x509.Extension[Any]) -> list[str]:
    value: x509.BasicConstraints = ext.value
    text = "CA:TRUE" if value.ca else "CA:FALSE"
    if value.path_length is not None and value.path_length >= 0:
        text += f", pathlen:{value.path_length}"
    return [_header("X509v3 Basic Constraints", ext), _PAD16 + text]


def _other_name_line(name: x509.OtherName) -> str:
    """certinfo decodes a few well-known other names and dumps the rest."""
    dotted = name.type_id.dotted_string
    try:
        if dotted == _PERMANENT_ID:
            tag, body = _single(name.value)
            if tag != 0x30:
                raise ValueError("not a SEQUENCE")
            value = assigner = ""
            for inner_tag, inner in _der_elements(body):
                if inner_tag == 0x0C:
                    value = inner.decode()
                elif inner_tag == 0x06:
                    assigner = _decode_oid(inner)
            return ((f"{_PAD16}Permanent Identifier: {value}" if value else "")
                    + (f", Assigner: {assigner}" if assigner else ""))
        if dotted == _HW_MODULE:
            tag, body = _single(name.value)
            parts = list(_der_elements(body))
            # certinfo reads the serial as [4] IMPLICIT; a plain OCTET STRING does not decode
            if tag != 0x30 or len(parts) < 2 or parts[0][0] != 0x06 or parts[1][0] != 0x84:
                raise ValueError("not a HardwareModuleName")
            serial = parts[1][1].decode("utf-8", "replace")
            return (f"{_PAD16}Hardware Module Name: Type: {_decode_oid(parts[0][1])}, "
                    f"Serial Number: {serial}")
        if dotted in (_UPN, _SIGSTORE_ID):
            label = "UPN" if dotted == _UPN else "Sigstore Identity"
            return f"{_PAD16}{label}: {_decode_string(*_single(name.value))}"
    except (ValueError, UnicodeDecodeError):
        pass
    return f"{_PAD16}OtherName: Type: {dotted}, Value: 0x{name.value.hex()}"


def _san_lines(ext: x509.Extension[Any]) -> list[str]:
    names: x509.SubjectAlternativeName = ext.value
    lines = [_header("X509v3 Subject Alternative Name", ext)]
    groups = [("DNS", list(names.get_values_for_type(x509.DNSName))),
              ("email", list(names.get_values_for_type(x509.RFC822Name))),
              ("IP Address", [_go_ip(i) for i in names.get_values_for_type(x509.IPAddress)]),
              ("URI", list(names.get_values_for_type(x509.UniformResourceIdentifier)))]
    for label, values in groups:
        if values:
            lines.append(_PAD16 + ", ".join(f"{label}:{value}" for value in values))
    for name in names:
        if isinstance(name, x509.OtherName):
            lines.append(_other_name_line(name))
        elif isinstance(name, x509.DirectoryName):
            # the TPM's device attributes travel as a directory name
            for rdn in name.value.rdns:
                first = next(iter(rdn))
                label = _TPM_ATTRS.get(first.oid.dotted_string)
                if label is not None:
                    lines.append(f"{_PAD16}{label}: {first.value}")
    return lines


def _eku_cert_lines(ext: x509.Extension[Any]) -> list[str]:
    """Go splits usages it knows from the rest; certinfo names the first ten and prints the Go
    extras as UNKNOWN, then the unknown OIDs."""
    known, unknown = [], []
    for oid in ext.value:
        dotted = oid.dotted_string
        if dotted in _EKU_BASE:
            known.append(_EKU_BASE[dotted])
        elif dotted in _EKU_GO_EXTRA:
            known.append("UNKNOWN")
        else:
            unknown.append("EK Certificate" if dotted == _EKU_EK else dotted)
    names = known + unknown
    return [_header("X509v3 Extended Key Usage", ext)] + ([_PAD16 + ", ".join(names)]
                                                         if names else [])


def _eku_csr_lines(ext: x509.Extension[Any]) -> list[str]:
    names = []
    for oid in ext.value:
        dotted = oid.dotted_string
        label = _EKU_BASE.get(dotted) or _EKU_GO_EXTRA.get(dotted)
        names.append(label or ("EK Certificate" if dotted == _EKU_EK else f"UNKNOWN({dotted})"))
    return [_header("X509v3 Extended Key Usage", ext)] + ([_PAD16 + ", ".join(names)]
                                                         if names else [])


def _subtree_groups(trees: Iterable[x509.GeneralName] | None) -> list[tuple[str, list[str]]]:
    trees = list(trees or [])
    return [("DNS", [t.value for t in trees if isinstance(t, x509.DNSName)]),
            ("Email", [t.value for t in trees if isinstance(t, x509.RFC822Name)]),
            ("URI", [t.value for t in trees if isinstance(t, x509.UniformResourceIdentifier)]),
            ("IP Range", [str(t.value) for t in trees if isinstance(t, x509.IPAddress)])]


def _name_constraints_lines(ext: x509.Extension[Any]) -> list[str]:
    value: x509.NameConstraints = ext.value
    lines = [_header("X509v3 Name Constraints", ext)]
    for title, trees in (("Permitted", value.permitted_subtrees),
                         ("Excluded", value.excluded_subtrees)):
        groups = [(label, values) for label, values in _subtree_groups(trees) if values]
        if groups:
            lines.append(f"{_PAD16}{title}:")
            lines += [f"{' ' * 18}{label}: {', '.join(values)}" for label, values in groups]
    return lines


def _uris(names: Iterable[x509.GeneralName] | None) -> list[str]:
    return [n.value for n in names or [] if isinstance(n, x509.UniformResourceIdentifier)]


def _crl_points(value: x509.CRLDistributionPoints) -> list[str]:
    return [uri for point in value for uri in _uris(point.full_name)]


def _aia_urls(value: x509.AuthorityInformationAccess) -> tuple[list[str], list[str]]:
    ocsp = [d.access_location.value for d in value
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]
    issuers = [d.access_location.value for d in value
               if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
               and isinstance(d.access_location, x509.UniformResourceIdentifier)]
    return ocsp, issuers


def _strings_sequence(body: bytes) -> list[str]:
    return [_decode_string(tag, value) for tag, value in _der_elements(body)]


def _key_value_lines(pairs: list[str]) -> list[str]:
    lines = []
    for index in range(0, len(pairs), 2):
        value = pairs[index + 1] if index + 1 < len(pairs) else "-"
        lines.append(f"{_PAD16}{pairs[index]}: {value}")
    return lines


def _parse_error(ext: x509.Extension[Any]) -> FormatError:
    return FormatError(f'certinfo: Error parsing OID "{ext.oid.dotted_string}"')


def _step_provisioner_lines(ext: x509.Extension[Any]) -> list[str]:
    try:
        prov = ProvisionerExtension.from_der(_raw_extension_value(ext))
    except (ValueError, UnicodeDecodeError):
        raise _parse_error(ext) from None
    kind = (_STEP_PROVISIONER_TYPES[prov.type] if 0 <= prov.type < len(_STEP_PROVISIONER_TYPES)
            else f"{prov.type} (unknown)")
    lines = [_header("X509v3 Step Provisioner", ext), f"{_PAD16}Type: {kind}",
             f"{_PAD16}Name: {prov.name}"]
    if prov.credential_id:
        lines.append(f"{_PAD16}CredentialID: {prov.credential_id}")
    return lines + _key_value_lines(list(prov.key_values))


def _step_ra_lines(ext: x509.Extension[Any]) -> list[str]:
    try:
        tag, body = _single(_raw_extension_value(ext))
        parts = list(_der_elements(body))
        if tag != 0x30 or not parts:
            raise ValueError("not a SEQUENCE")
        kind, certificate_id, pairs = _decode_string(*parts[0]), "", []
        for inner_tag, inner in parts[1:]:
            if inner_tag == 0x30:
                pairs = _strings_sequence(inner)
            else:
                certificate_id = _decode_string(inner_tag, inner)
    except (ValueError, UnicodeDecodeError):
        raise _parse_error(ext) from None
    lines = [_header("X509v3 Step Registration Authority", ext), f"{_PAD16}Type: {kind}"]
    if certificate_id:
        lines.append(f"{_PAD16}CertificateID: {certificate_id}")
    return lines + _key_value_lines(pairs)


def _step_endpoint_lines(ext: x509.Extension[Any]) -> list[str]:
    try:
        tag, body = _single(_raw_extension_value(ext))
        parts = list(_der_elements(body))
        if tag != 0x30 or len(parts) != 2 or parts[0][0] != 0x02:
            raise ValueError("not a managed endpoint")
        kind = int.from_bytes(parts[0][1], "big", signed=True)
        endpoint = _decode_string(*parts[1])
    except (ValueError, UnicodeDecodeError):
        raise _parse_error(ext) from None
    name = (_STEP_ENDPOINT_KINDS[kind] if 0 <= kind < len(_STEP_ENDPOINT_KINDS)
            else f"{kind} (unknown)")
    return [_header("X509v3 Step Managed Endpoint", ext), f"{_PAD16}Kind: {name}",
            f"{_PAD16}EndpointID: {endpoint}"]


def _step_device_lines(ext: x509.Extension[Any]) -> list[str]:
    try:
        tag, body = _single(_raw_extension_value(ext))
        parts = list(_der_elements(body))
        if tag != 0x30 or len(parts) != 1:
            raise ValueError("not a managed device")
        device = _decode_string(*parts[0])
    except (ValueError, UnicodeDecodeError):
        raise _parse_error(ext) from None
    return [_header("X509v3 Step Managed Device", ext), f"{_PAD16}DeviceID: {device}"]


_CT_HASHES = {"md5": "MD5", "sha1": "SHA1", "sha224": "SHA224", "sha256": "SHA256",
              "sha384": "SHA384", "sha512": "SHA512"}


def _sct_lines(ext: x509.Extension[Any]) -> list[str]:
    lines = [_header("RFC6962 Certificate Transparency SCT", ext)]
    for index, sct in enumerate(ext.value):
        stamp = sct.timestamp.replace(tzinfo=datetime.UTC)
        millis = stamp.microsecond // 1000
        hash_name = _CT_HASHES.get(sct.signature_hash_algorithm.name, "NONE")
        version = "V1" if sct.version == ct.Version.v1 else "UnknownVersion"
        lines += [f"{_PAD16}SCT [{index}]:",
                  f"{_PAD20}Version: {version} (0x{sct.version.value:x})",
                  f"{_PAD20}LogID: {_b64(sct.log_id)}",
                  f"{_PAD20}Timestamp: {_go_date(stamp)[:-9]}.{millis:03d} {stamp.year:04d} UTC",
                  f"{_PAD20}Signature Algorithm: {hash_name}-{sct.signature_algorithm.name}",
                  *_hex_dump(sct.signature, 18, 22)]
    return lines


def _yubico_lines(ext: x509.Extension[Any]) -> list[str] | None:
    raw = _raw_extension_value(ext)
    arc = ext.oid.dotted_string[len(_YUBICO):]
    if arc == "3":
        version = ".".join(str(b) for b in raw) if raw else "unknown"
        return [_header("X509v3 YubiKey Firmware Version", ext), _PAD16 + version]
    if arc == "7":
        try:
            tag, body = _single(raw)
            if tag != 0x02:
                raise ValueError("not an INTEGER")
        except ValueError:
            raise _parse_error(ext) from None
        serial = int.from_bytes(body, "big", signed=True)
        return [_header("X509v3 YubiKey Serial Number", ext), f"{_PAD16}{serial}"]
    if arc == "8":
        pin = {1: "never", 2: "once per session", 3: "always"}
        touch = {1: "never", 2: "always", 3: "once per session"}
        policies = []
        for position, (label, names) in enumerate((("PIN policy", pin),
                                                   ("Touch policy", touch))):
            if position < len(raw):
                byte = raw[position]
                policies.append(f"{label}: {names.get(byte, f'unknown (0x{byte:02x})')}")
        return [_header("X509v3 YubiKey Policy", ext),
                *[_PAD16 + p for p in policies or ["unknown"]]]
    if arc == "9":
        forms = {1: "USB-A Keychain", 2: "USB-A Nano", 3: "USB-C Keychain", 4: "USB-C Nano",
                 5: "Lightning or USB-C"}
        if not raw:
            text = "unknown"
        elif raw[0] in forms or raw[0] - 80 in forms:
            # certinfo matches the FIPS variants as decimal 81-85
            text = forms.get(raw[0]) or forms[raw[0] - 80]
            text += " (FIPS)" if raw[0] > 80 else ""
        else:
            text = f"unknown (0x{raw[0]:02x})"
        return [_header("X509v3 YubiKey Formfactor", ext), _PAD16 + text]
    if arc in ("10", "11"):
        return [_header("X509v3 YubiKey Certification", ext),
                f"{_PAD16}{'FIPS' if arc == '10' else 'CSPN'} Certified"]
    return None


def _subject_directory_lines(ext: x509.Extension[Any]) -> list[str]:
    lines = [_header("X509v3 Subject Directory Attributes", ext)]
    raw = _raw_extension_value(ext)
    try:
        tag, body = _single(raw)
        attribute_tag, attribute = next(_der_elements(body))
        parts = list(_der_elements(attribute))
        if tag != 0x30 or attribute_tag != 0x30 or len(parts) != 2 or parts[0][0] != 0x06:
            raise ValueError("not an attribute")
        oid, values = _decode_oid(parts[0][1]), parts[1][1]
    except (ValueError, StopIteration):
        return lines + [_PAD16 + _go_runes(raw)]
    if oid == _TPM_SPECIFICATION:
        try:
            spec = [value for _, value in _der_elements(next(_der_elements(values))[1])]
            family = spec[0].decode()
            level, revision = (int.from_bytes(v, "big", signed=True) for v in spec[1:3])
            text = f"Family: {family}, Level: {level}, Revision: {revision}"
            return [*lines, f"{_PAD16}TPM Specification: {text}"]
        except (ValueError, StopIteration, IndexError, UnicodeDecodeError):
            pass
    return lines + [f"{_PAD16}{oid}: 0x{values.hex()}"]


def _certificate_extension_lines(ext: x509.Extension[Any]) -> list[str]:
    dotted, value = ext.oid.dotted_string, ext.value
    if dotted.startswith("2.5.29.") and dotted.count(".") == 3:
        arc = int(dotted.rsplit(".", 1)[1])
        if arc == 9:
            return _subject_directory_lines(ext)
        if arc == 14:
            return [_header("X509v3 Subject Key Identifier", ext),
                    _PAD16 + _upper_hex(value.digest)]
        if arc == 15:
            return _key_usage_lines(ext)
        if arc == 17:
            return _san_lines(ext)
        if arc == 19:
            return _basic_constraints_lines(ext)
        if arc == 30:
            return _name_constraints_lines(ext)
        if arc == 31:
            uris = _crl_points(value)
            return [_header("X509v3 CRL Distribution Points", ext)] + (
                [f"{_PAD16}Full Name:", f"{' ' * 18}" + ", ".join(f"URI:{u}" for u in uris)]
                if uris else [])
        if arc == 32:
            return [_header("X509v3 Certificate Policies", ext)] + [
                f"{_PAD16}Policy: {policy.policy_identifier.dotted_string}" for policy in value]
        if arc == 35:
            key_id = value.key_identifier or b""
            return [_header("X509v3 Authority Key Identifier", ext),
                    _PAD16 + _upper_hex(key_id) if key_id else ""]
        if arc == 37:
            return _eku_cert_lines(ext)
        return [f"Unknown extension 2.5.29.{arc}"]
    if dotted == "1.3.6.1.5.5.7.1.1":
        ocsp, issuers = _aia_urls(value)
        lines = [_header("Authority Information Access", ext)]
        if ocsp:
            lines.append(f"{_PAD16}OCSP - " + ",".join(f"URI:{u}" for u in ocsp))
        if issuers:
            lines.append(f"{_PAD16}CA Issuers - " + ",".join(f"URI:{u}" for u in issuers))
        return lines
    if dotted == _NS_COMMENT:
        try:
            comment = _decode_string(*_single(_raw_extension_value(ext)))
        except (ValueError, UnicodeDecodeError):
            raise _parse_error(ext) from None
        return [_header("Netscape Comment", ext), _PAD16 + comment]
    if ext.oid == PROVISIONER_OID:
        return _step_provisioner_lines(ext)
    if dotted == _STEP_RA:
        return _step_ra_lines(ext)
    if dotted == _STEP_ENDPOINT:
        return _step_endpoint_lines(ext)
    if dotted == _STEP_DEVICE:
        return _step_device_lines(ext)
    if dotted == _SCT_LIST and isinstance(value, x509.PrecertificateSignedCertificateTimestamps):
        return _sct_lines(ext)
    if dotted.startswith(_YUBICO):
        lines = _yubico_lines(ext)
        if lines is not None:
            return lines
    if dotted in _SIGSTORE_TEXT:
        return [_header(_SIGSTORE_TEXT[dotted], ext),
                _PAD16 + _raw_extension_value(ext).decode("utf-8", "replace")]
    return [_header(dotted, ext), _PAD16 + _go_runes(_raw_extension_value(ext))]


def _signature_lines(item: Item) -> list[str]:
    return [f"    Signature Algorithm: {signature_name(item)}",
            *_hex_dump(item.signature, 18, 9)]


def certificate_text(item: Item) -> str:
    """step's default ``inspect`` text for a certificate or a CSR (without the final newline)."""
    if isinstance(item, x509.CertificateSigningRequest):
        return _csr_text(item)
    version = item.version.value + 1
    serial = _int_bytes(item.serial_number)
    lines = ["Certificate:", "    Data:",
             f"        Version: {version} ({max(version - 1, 0):#x})",
             f"        Serial Number: {item.serial_number} ({_prefixed_hex(serial)})",
             f"        Signature Algorithm: {signature_name(item)}",
             f"        Issuer: {dn(item.issuer)}", "        Validity",
             f"            Not Before: {_go_date(item.not_valid_before_utc)}",
             f"            Not After : {_go_date(item.not_valid_after_utc)}",
             *_subject_lines(item)]
    extensions = _extensions(item) if version == 3 else []
    if extensions:
        lines.append("        X509v3 extensions:")
        for ext in extensions:
            lines += _certificate_extension_lines(ext)
    lines += _signature_lines(item)
    return "\n".join(lines)


def _csr_extension_lines(ext: x509.Extension[Any]) -> list[str] | None:
    """The requested extensions certinfo decodes in a CSR; None for the rest."""
    dotted, value = ext.oid.dotted_string, ext.value
    if dotted == "2.5.29.14":
        return [_header("X509v3 Subject Key Identifier", ext), _PAD16 + _upper_hex(value.digest)]
    if dotted == "2.5.29.17":
        return _san_lines(ext)
    if dotted == "2.5.29.15":
        return _key_usage_lines(ext)
    if dotted == "2.5.29.19":
        return _basic_constraints_lines(ext)
    if dotted == "2.5.29.30":
        if value.excluded_subtrees and ext.critical:
            reason = "unexpected excluded name constraints"
            return [f"{_PAD12}X509v3 Name Constraints: failed to decode: {reason}"]
        permitted = [t.value for t in value.permitted_subtrees or []
                     if isinstance(t, x509.DNSName)]
        lines = [_header("X509v3 Name Constraints", ext)]
        if permitted:
            lines += [f"{_PAD16}Permitted:", f"{' ' * 18}{', '.join(permitted)}"]
        return lines
    if dotted == "2.5.29.37":
        return _eku_csr_lines(ext)
    return None


def _csr_text(csr: x509.CertificateSigningRequest) -> str:
    lines = ["Certificate Request:", "    Data:", "        Version: 0 (0x0)", *_subject_lines(csr)]
    extensions = _extensions(csr)
    if extensions:
        lines.append("        Requested Extensions:")
        leftovers = []
        for ext in extensions:
            decoded = _csr_extension_lines(ext)
            if decoded is None:
                leftovers.append(ext)
            else:
                lines += decoded
        if leftovers:
            lines.append("        Attributes:")
            for ext in leftovers:
                raw = _raw_extension_value(ext)
                text, replaced = _sanitize(raw)
                lines += [_header(ext.oid.dotted_string, ext), _PAD16 + text]
                if replaced:  # the text alone would hide bytes, so certinfo adds them in hex
                    lines.append(_PAD16 + ":".join(f"{b:02x}" for b in raw))
    lines += _signature_lines(csr)
    return "\n".join(lines)


# -- --format json: zcrypto's schema ---------------------------------------------------------------

# zcrypto's names for subject/issuer attributes, in its JSON field order.
_PKIX_FIELDS = [("2.5.4.3", "common_name"), ("2.5.4.5", "serial_number"), ("2.5.4.6", "country"),
                ("2.5.4.7", "locality"), ("2.5.4.8", "province"), ("2.5.4.9", "street_address"),
                ("2.5.4.10", "organization"), ("2.5.4.11", "organizational_unit"),
                ("2.5.4.17", "postal_code"), (_DC_ATTR, "domain_component"),
                (_EMAIL_ATTR, "email_address"), ("2.5.4.42", "given_name"),
                ("2.5.4.4", "surname"), ("1.3.6.1.4.1.311.60.2.1.3", "jurisdiction_country"),
                ("1.3.6.1.4.1.311.60.2.1.1", "jurisdiction_locality"),
                ("1.3.6.1.4.1.311.60.2.1.2", "jurisdiction_province")]
# OpenSSL's short names, which zcrypto uses for issuer_dn / subject_dn.
_SHORT_NAMES = {"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
                "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O",
                "2.5.4.11": "OU", "2.5.4.12": "title", "2.5.4.13": "description",
                "2.5.4.15": "businessCategory", "2.5.4.17": "postalCode", "2.5.4.41": "name",
                "2.5.4.42": "GN", "2.5.4.43": "initials", "2.5.4.44": "generationQualifier",
                "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym", "2.5.4.72": "role",
                _EMAIL_ATTR: "emailAddress", _DC_ATTR: "DC", _UID_ATTR: "UID",
                "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocality",
                "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvince",
                "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountry"}
# zcrypto's signature algorithm table, in its order: the JSON OID is the last row with that
# algorithm (so SHA1-RSA always shows the ISO OID 1.3.14.3.2.29).
_ZCRYPTO_SIGNATURES = [
    ("MD2-RSA", "1.2.840.113549.1.1.2"), ("MD5-RSA", "1.2.840.113549.1.1.4"),
    ("SHA1-RSA", "1.2.840.113549.1.1.5"), ("SHA1-RSA", "1.3.14.3.2.29"),
    ("SHA256-RSA", "1.2.840.113549.1.1.11"), ("SHA384-RSA", "1.2.840.113549.1.1.12"),
    ("SHA512-RSA", "1.2.840.113549.1.1.13"), ("SHA256-RSAPSS", _RSA_PSS),
    ("SHA384-RSAPSS", _RSA_PSS), ("SHA512-RSAPSS", _RSA_PSS), ("DSA-SHA1", "1.2.840.10040.4.3"),
    ("DSA-SHA256", "2.16.840.1.101.3.4.3.2"), ("ECDSA-SHA1", "1.2.840.10045.4.1"),
    ("ECDSA-SHA256", "1.2.840.10045.4.3.2"), ("ECDSA-SHA384", "1.2.840.10045.4.3.3"),
    ("ECDSA-SHA512", "1.2.840.10045.4.3.4"), ("Ed25519", "1.3.101.112")]
_ZCRYPTO_KEY_ALGORITHMS = {"1.2.840.113549.1.1.1": "RSA", "1.2.840.10040.4.1": "DSA",
                           "1.2.840.10045.2.1": "ECDSA", "1.3.101.112": "Ed25519",
                           "1.3.101.110": "X25519"}
# zcrypto's extended key usage flags, in its JSON field order.
_ZCRYPTO_EKUS = [tuple(pair.split("=", 1)) for pair in (
    "eap_over_ppp=1.3.6.1.5.5.7.3.13", "ocsp_signing=1.3.6.1.5.5.7.3.9",
    "apple_software_update_signing=1.2.840.113635.100.4.1.2",
    "apple_crypto_test_env=1.2.840.113635.100.4.5.3",
    "microsoft_embedded_nt_crypto=1.3.6.1.4.1.311.10.3.8",
    "microsoft_drm_individualization=1.3.6.1.4.1.311.10.5.2",
    "microsoft_key_recovery_21=1.3.6.1.4.1.311.21.6",
    "apple_crypto_production_env=1.2.840.113635.100.4.5.1",
    "apple_crypto_tier1_qos=1.2.840.113635.100.4.6.2", "client_auth=1.3.6.1.5.5.7.3.2",
    "code_signing=1.3.6.1.5.5.7.3.3", "apple_crypto_development_env=1.2.840.113635.100.4.5.4",
    "apple_crypto_tier0_qos=1.2.840.113635.100.4.6.1",
    "apple_crypto_tier2_qos=1.2.840.113635.100.4.6.3",
    "microsoft_mobile_device_software=1.3.6.1.4.1.311.10.3.14",
    "microsoft_nt5_crypto=1.3.6.1.4.1.311.10.3.6",
    "apple_code_signing_third_party=1.2.840.113635.100.4.1.3",
    "microsoft_timestamp_signing=1.3.6.1.4.1.311.10.3.2",
    "microsoft_root_list_signer=1.3.6.1.4.1.311.10.3.9",
    "microsoft_system_health=1.3.6.1.4.1.311.47.1.1", "time_stamping=1.3.6.1.5.5.7.3.8",
    "apple_code_signing_development=1.2.840.113635.100.4.1.1",
    "apple_crypto_qos=1.2.840.113635.100.4.6", "microsoft_document_signing=1.3.6.1.4.1.311.10.3.12",
    "microsoft_encrypted_file_system=1.3.6.1.4.1.311.10.3.4",
    "microsoft_whql_crypto=1.3.6.1.4.1.311.10.3.5",
    "netscape_server_gated_crypto=2.16.840.1.113730.4.1",
    "apple_crypto_tier3_qos=1.2.840.113635.100.4.6.4",
    "microsoft_smart_display=1.3.6.1.4.1.311.10.3.15",
    "microsoft_efs_recovery=1.3.6.1.4.1.311.10.3.4.1",
    "microsoft_kernel_mode_code_signing=1.3.6.1.4.1.311.61.1.1", "server_auth=1.3.6.1.5.5.7.3.1",
    "ipsec_end_system=1.3.6.1.5.5.7.3.5", "ipsec_user=1.3.6.1.5.5.7.3.7",
    "microsoft_qualified_subordinate=1.3.6.1.4.1.311.10.3.10",
    "apple_resource_signing=1.2.840.113635.100.4.1.4",
    "microsoft_oem_whql_crypto=1.3.6.1.4.1.311.10.3.7",
    "microsoft_smartcard_logon=1.3.6.1.4.1.311.20.2.2", "email_protection=1.3.6.1.5.5.7.3.4",
    "microsoft_server_gated_crypto=1.3.6.1.4.1.311.10.3.3",
    "microsoft_ca_exchange=1.3.6.1.4.1.311.21.5", "dvcs=1.3.6.1.5.5.7.3.10",
    "apple_ichat_signing=1.2.840.113635.100.4.2", "apple_ichat_encryption=1.2.840.113635.100.4.3",
    "apple_code_signing=1.2.840.113635.100.4.1", "apple_crypto_env=1.2.840.113635.100.4.5",
    "microsoft_system_health_loophole=1.3.6.1.4.1.311.47.1.3", "any=2.5.29.37.0",
    "apple_crypto_maintenance_env=1.2.840.113635.100.4.5.2", "ipsec_tunnel=1.3.6.1.5.5.7.3.6",
    "microsoft_lifetime_signing=1.3.6.1.4.1.311.10.3.13",
    "microsoft_csp_signature=1.3.6.1.4.1.311.10.3.16",
    "microsoft_sgc_serialized=1.3.6.1.4.1.311.10.3.3.1",
    "sbgp_cert_aa_service_auth=1.3.6.1.5.5.7.3.11", "eap_over_lan=1.3.6.1.5.5.7.3.14",
    "microsoft_license_server=1.3.6.1.4.1.311.10.5.4",
    "microsoft_enrollment_agent=1.3.6.1.4.1.311.20.2.1",
    "apple_system_identity=1.2.840.113635.100.4.4",
    "microsoft_key_recovery_3=1.3.6.1.4.1.311.10.3.11",
    "microsoft_cert_trust_list_signing=1.3.6.1.4.1.311.10.3.1",
    "microsoft_drm=1.3.6.1.4.1.311.10.5.1", "microsoft_licenses=1.3.6.1.4.1.311.10.5.3")]
_ZCRYPTO_EKU_NAMES = {oid: name for name, oid in _ZCRYPTO_EKUS}
# zcrypto's provisioner type names (fewer than certinfo's).
_ZCRYPTO_PROVISIONERS = {1: "JWK", 2: "OIDC", 3: "GCP", 4: "AWS", 5: "Azure", 6: "ACME", 7: "X5C",
                         8: "K8sSA"}
# The policy OIDs that mark validation levels (the CA/Browser Forum's and Let's Encrypt's).
_EV_POLICIES = {"2.23.140.1.1", "2.23.140.1.3", "2.23.140.1.31"}
_OV_POLICIES = {"2.23.140.1.2.2", "2.23.140.1.2.3"}
_DV_POLICIES = {"2.23.140.1.2.1", "1.3.6.1.4.1.44947.1.1.1"}
# The NIST curves' prime, order and b (Go's CurveParams); the base point comes from 1*G.
_CURVE_CONSTANTS = {
    "secp224r1": (2**224 - 2**96 + 1,
                  0xffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d),
    "secp256r1": (2**256 - 2**224 + 2**192 + 2**96 - 1,
                  0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551),
    "secp384r1": (2**384 - 2**128 - 2**96 + 2**32 - 1, int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973", 16)),
    "secp521r1": (2**521 - 1, int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409", 16)),
}


@functools.cache
def curve_parameters(curve_name: str) -> dict[str, int] | None:
    """p, n, b, Gx, Gy of a NIST curve; b follows from the base point since a = -3."""
    constants = _CURVE_CONSTANTS.get(curve_name)
    if constants is None:
        return None
    prime, order = constants
    curve = {"secp224r1": ec.SECP224R1(), "secp256r1": ec.SECP256R1(),
             "secp384r1": ec.SECP384R1(), "secp521r1": ec.SECP521R1()}[curve_name]
    base = ec.derive_private_key(1, curve).public_key().public_numbers()
    b = (base.y ** 2 - base.x ** 3 + 3 * base.x) % prime
    return {"p": prime, "n": order, "b": b, "gx": base.x, "gy": base.y}


def _pkix_json(name: x509.Name) -> dict[str, list[str]]:
    """zcrypto's subject/issuer object: string attributes by field, in DER order per field."""
    values: dict[str, list[str]] = {}
    for attribute in name:
        if isinstance(attribute.value, str):
            values.setdefault(attribute.oid.dotted_string, []).append(attribute.value)
    return {field: values[oid] for oid, field in _PKIX_FIELDS if oid in values}


def _zcrypto_dn(name: x509.Name) -> str:
    parts = []
    for attribute in name:
        value = attribute.value
        text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
        dotted = attribute.oid.dotted_string
        parts.append(f"{_SHORT_NAMES.get(dotted, dotted)}={text}")
    return ", ".join(parts)


def _signature_algorithm_json(item: Item) -> dict[str, Any]:
    name = signature_name(item)
    oids = [oid for algorithm, oid in _ZCRYPTO_SIGNATURES if algorithm == name]
    if not oids:  # zcrypto's unknown algorithm: number 0 and no OID
        return {"name": "0", "oid": None}
    return {"name": name, "oid": [int(arc) for arc in oids[-1].split(".")]}


def _hex_digest(algorithm: str, *parts: bytes) -> str:
    digest = hashlib.new(algorithm)
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _key_algorithm_name(item: Item) -> str:
    return _ZCRYPTO_KEY_ALGORITHMS.get(item.public_key_algorithm_oid.dotted_string,
                                       "unknown_algorithm")


def _subject_key_info_json(item: Item) -> dict[str, Any]:
    key = _public_key(item)
    info: dict[str, Any] = {"key_algorithm": {"name": _key_algorithm_name(item)}}
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        modulus = _int_bytes(numbers.n)
        info["rsa_public_key"] = {"exponent": numbers.e, "modulus": _b64(modulus),
                                  "length": len(modulus) * 8}
    elif _is_dsa(key):
        params = key.parameters().parameter_numbers()
        info["dsa_public_key"] = {"g": _b64(_int_bytes(params.g)), "p": _b64(_int_bytes(params.p)),
                                  "q": _b64(_int_bytes(params.q)),
                                  "y": _b64(_int_bytes(key.public_numbers().y))}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        numbers, params = key.public_numbers(), curve_parameters(key.curve.name)
        if params is not None:  # zcrypto keeps only the curves Go knows
            info["ecdsa_public_key"] = {
                "b": _b64(_int_bytes(params["b"])), "curve": _go_curve(key),
                "gx": _b64(_int_bytes(params["gx"])), "gy": _b64(_int_bytes(params["gy"])),
                "length": key.curve.key_size, "n": _b64(_int_bytes(params["n"])),
                "p": _b64(_int_bytes(params["p"])), "x": _b64(_int_bytes(numbers.x)),
                "y": _b64(_int_bytes(numbers.y))}
    info["fingerprint_sha256"] = _hex_digest("sha256", _spki_der(item))
    return info


def _other_name_json(name: x509.OtherName) -> dict[str, str]:
    try:  # zcrypto keeps the explicit value's contents, without its own tag and length
        _, body = _single(name.value)
    except ValueError:
        body = name.value
    return {"id": name.type_id.dotted_string, **({"value": _b64(body)} if body else {})}


def _general_names_json(names: Iterable[x509.GeneralName]) -> dict[str, Any]:
    names = list(names)
    groups: dict[str, list[Any]] = {
        "directory_names": [_pkix_json(n.value) for n in names
                            if isinstance(n, x509.DirectoryName)],
        "dns_names": [n.value for n in names if isinstance(n, x509.DNSName)],
        "email_addresses": [n.value for n in names if isinstance(n, x509.RFC822Name)],
        "ip_addresses": [_go_ip(n.value) for n in names if isinstance(n, x509.IPAddress)],
        "other_names": [_other_name_json(n) for n in names if isinstance(n, x509.OtherName)],
        "registered_ids": [n.value.dotted_string for n in names
                           if isinstance(n, x509.RegisteredID)],
        "uniform_resource_identifiers": [n.value for n in names
                                         if isinstance(n, x509.UniformResourceIdentifier)],
    }
    return {key: value for key, value in groups.items() if value}


def _ip_subtree_json(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, str]:
    return {"cidr": str(network), "begin": str(network.network_address),
            "end": str(network.broadcast_address), "mask": str(network.netmask)}


def _name_constraints_json(ext: x509.Extension[Any]) -> dict[str, Any]:
    value: x509.NameConstraints = ext.value
    out: dict[str, Any] = {"critical": ext.critical}
    for prefix, trees, registered in (("permitted", value.permitted_subtrees, "permitted"),
                                      ("excluded", value.excluded_subtrees, "excluded")):
        trees = list(trees or [])
        groups = {
            f"{prefix}_names": [t.value for t in trees if isinstance(t, x509.DNSName)],
            f"{prefix}_email_addresses": [t.value for t in trees
                                          if isinstance(t, x509.RFC822Name)],
            f"{prefix}_ip_addresses": [_ip_subtree_json(t.value) for t in trees
                                       if isinstance(t, x509.IPAddress)],
            f"{prefix}_directory_names": [_pkix_json(t.value) for t in trees
                                          if isinstance(t, x509.DirectoryName)],
            # sic: zcrypto spells these keys "registred"
            f"{registered}_registred_id": [t.value.dotted_string for t in trees
                                           if isinstance(t, x509.RegisteredID)],
        }
        out.update({key: items for key, items in groups.items() if items})
    return out


def _policies_json(value: x509.CertificatePolicies) -> list[dict[str, Any]]:
    policies = []
    for policy in value:
        entry: dict[str, Any] = {"id": policy.policy_identifier.dotted_string}
        qualifiers = policy.policy_qualifiers or []
        cps = [q for q in qualifiers if isinstance(q, str)]
        notices = []
        for qualifier in qualifiers:
            if isinstance(qualifier, x509.UserNotice) and qualifier.explicit_text:
                notice: dict[str, Any] = {"explicit_text": qualifier.explicit_text}
                reference = qualifier.notice_reference
                if reference is not None:
                    notice["notice_reference"] = [{
                        **({"organization": reference.organization}
                           if reference.organization else {}),
                        **({"notice_numbers": list(reference.notice_numbers)}
                           if reference.notice_numbers else {})}]
                notices.append(notice)
        if cps:
            entry["cps"] = cps
        if notices:
            entry["user_notice"] = notices
        policies.append(entry)
    return policies


_CT_HASH_CODES = {"md5": 1, "sha1": 2, "sha224": 3, "sha256": 4, "sha384": 5, "sha512": 6}
_CT_SIGNATURE_CODES = {"ANONYMOUS": 0, "RSA": 1, "DSA": 2, "ECDSA": 3}


def _sct_json(sct: ct.SignedCertificateTimestamp) -> dict[str, Any]:
    stamp = sct.timestamp.replace(tzinfo=datetime.UTC)
    seconds = int(stamp.timestamp())
    signed = (bytes([_CT_HASH_CODES.get(sct.signature_hash_algorithm.name, 0),
                     _CT_SIGNATURE_CODES.get(sct.signature_algorithm.name, 0)])
              + len(sct.signature).to_bytes(2, "big") + sct.signature)
    out: dict[str, Any] = {"version": sct.version.value, "log_id": _b64(sct.log_id)}
    if 0 < seconds <= 253402300799:  # zcrypto drops timestamps past the year 9999
        out["timestamp"] = seconds
    if sct.extension_bytes:
        out["extensions"] = _b64(sct.extension_bytes)
    out["signature"] = _b64(signed)
    return out


def _step_provisioner_json(ext: x509.Extension[Any]) -> dict[str, str]:
    prov = ProvisionerExtension.from_der(_raw_extension_value(ext))
    fields = {"type": _ZCRYPTO_PROVISIONERS.get(prov.type, f"Unknown ({prov.type:#x})"),
              "name": prov.name}
    if prov.credential_id:
        fields["credentialID"] = prov.credential_id
    pairs = list(prov.key_values)
    for index in range(0, len(pairs), 2):
        key = pairs[index]
        if key[:1].isascii() and key[:1].isupper():
            key = key[0].lower() + key[1:]
        fields[key] = pairs[index + 1] if index + 1 < len(pairs) else "-"
    return dict(sorted(fields.items()))  # a Go map: keys come out sorted


def _key_usage_value(usage: x509.KeyUsage) -> int:
    value = 0
    for bit, (attribute, _) in enumerate(_KEY_USAGES):
        try:
            if getattr(usage, attribute):
                value |= 1 << bit
        except ValueError:
            pass
    return value


_KEY_USAGE_JSON = ["digital_signature", "content_commitment", "key_encipherment",
                   "data_encipherment", "key_agreement", "certificate_sign", "crl_sign",
                   "encipher_only", "decipher_only"]


def _extensions_json(cert: x509.Certificate) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    found: dict[str, Any] = {}
    unknown: list[dict[str, Any]] = []
    for ext in _extensions(cert):
        dotted, value = ext.oid.dotted_string, ext.value
        if dotted == "2.5.29.15":
            bits = _key_usage_value(value)
            if bits:
                found["key_usage"] = {**{name: True for bit, name in enumerate(_KEY_USAGE_JSON)
                                         if bits & (1 << bit)}, "value": bits}
        elif dotted == "2.5.29.19":
            found["basic_constraints"] = {"is_ca": value.ca, **(
                {"max_path_len": value.path_length} if value.path_length is not None else {})}
        elif dotted == "2.5.29.17":
            found["subject_alt_name"] = _general_names_json(value)
        elif dotted == "2.5.29.18":
            found["issuer_alt_name"] = _general_names_json(value)
        elif dotted == "2.5.29.30":
            found["name_constraints"] = _name_constraints_json(ext)
        elif dotted == "2.5.29.31":
            points = _crl_points(value)
            if points:
                found["crl_distribution_points"] = points
        elif dotted == "2.5.29.35":
            if value.key_identifier:
                found["authority_key_id"] = value.key_identifier.hex()
        elif dotted == "2.5.29.14":
            if value.digest:
                found["subject_key_id"] = value.digest.hex()
        elif dotted == "2.5.29.37":
            oids = {oid.dotted_string for oid in value}
            usages: dict[str, Any] = {name: True for name, oid in _ZCRYPTO_EKUS if oid in oids}
            others = [oid.dotted_string for oid in value
                      if oid.dotted_string not in _ZCRYPTO_EKU_NAMES]
            if others:
                usages["unknown"] = others
            found["extended_key_usage"] = usages
        elif dotted == "2.5.29.32":
            found["certificate_policies"] = _policies_json(value)
        elif dotted == "1.3.6.1.5.5.7.1.1":
            ocsp, issuers = _aia_urls(value)
            found["authority_info_access"] = {**({"ocsp_urls": ocsp} if ocsp else {}),
                                              **({"issuer_urls": issuers} if issuers else {})}
        elif dotted == _CT_POISON:
            found["ct_poison"] = True
        elif dotted == _SCT_LIST and isinstance(value,
                                                x509.PrecertificateSignedCertificateTimestamps):
            scts = [_sct_json(sct) for sct in value]
            if scts:
                found["signed_certificate_timestamps"] = scts
        elif ext.oid == PROVISIONER_OID and _provisioner(cert) is not None:
            found["step_provisioner"] = _step_provisioner_json(ext)
        else:
            raw = _raw_extension_value(ext)
            unknown.append({"id": dotted, "critical": ext.critical,
                            **({"value": _b64(raw)} if raw else {})})
    order = ["key_usage", "basic_constraints", "subject_alt_name", "issuer_alt_name",
             "name_constraints", "crl_distribution_points", "authority_key_id", "subject_key_id",
             "extended_key_usage", "certificate_policies", "authority_info_access", "ct_poison",
             "signed_certificate_timestamps", "step_provisioner"]
    return {key: found[key] for key in order if key in found}, unknown


_URL_SCHEMES = {"ftp", "tcp", "udp", "ws", "wss", "http", "https"}
_HOST_LABEL = re.compile(r"^[\w-]+$")


def _looks_like_url(value: str) -> bool:
    """An approximation of govalidator's ``IsURL``, which zcrypto uses to pick ``names``."""
    if not 3 < len(value) < 2083 or value.startswith(".") or any(c.isspace() for c in value):
        return False
    rest = value
    if "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() not in _URL_SCHEMES:
            return False
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = re.sub(r":\d{1,5}$", "", host)
    if not host or host.startswith("."):
        return False
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return all(label and _HOST_LABEL.match(label) for label in labels)


def _valid_name(value: str) -> bool:
    if value.startswith(("?.", "*.")):
        return _valid_name(value[2:])
    return _looks_like_url(value)


def _json_names(cert: x509.Certificate) -> list[str]:
    dns, ips, _, uris = _san_values(cert)
    common_name = _go_common_name(cert.subject)
    names = [common_name] if _valid_name(common_name) else []
    names += [n for n in dns if _valid_name(n) or "." not in n]
    names += [n for n in uris if _looks_like_url(n)]
    names += [n for n in ips if _looks_like_url(n)]
    return list(dict.fromkeys(names))


def _validation_level(cert: x509.Certificate, self_signed: bool) -> str:
    policies = _extension(cert, ExtensionOID.CERTIFICATE_POLICIES)
    if policies is None or self_signed:
        return "unknown"
    oids = {policy.policy_identifier.dotted_string for policy in policies}
    if oids & _EV_POLICIES:
        return "EV"
    if oids & _OV_POLICIES:
        return "OV"
    if oids & _DV_POLICIES:
        return "DV"
    subject = _pkix_json(cert.subject)
    organization = subject.get("organization", [])
    units = subject.get("organizational_unit", [])
    named_like_domain = ((organization and organization[0] == _go_common_name(cert.subject))
                         or (units and "Domain Control Validated" in units[0]))
    if named_like_domain and not any(k in subject for k in ("locality", "province",
                                                            "postal_code")):
        return "DV"
    return "unknown"


def _validity_seconds(cert: x509.Certificate) -> int:
    seconds = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    limit = 9223372036.854775807  # Go's time.Duration saturates at about 292 years
    return int(max(-limit, min(limit, seconds)))


def _tbs_without_scts(cert: x509.Certificate) -> bytes:
    try:
        return cert.tbs_precertificate_bytes
    except ValueError:  # no SCT list to strip
        return cert.tbs_certificate_bytes


def certificate_json(item: Item) -> dict[str, Any]:
    """zcrypto's JSON document for a certificate (or Go's field names for a CSR)."""
    if isinstance(item, x509.CertificateSigningRequest):
        return _csr_json(item)
    cert = item
    raw = _der(cert)
    algorithm = _signature_algorithm_json(cert)
    self_signed = (_raw_field(cert, 2, 0) == _raw_subject(cert)
                   and _signed_by(cert, _public_key(cert), allow_sha1=True))
    extensions, unknown = _extensions_json(cert)
    document: dict[str, Any] = {
        "version": cert.version.value + 1,
        "serial_number": str(cert.serial_number),
        "signature_algorithm": algorithm,
        "issuer": _pkix_json(cert.issuer),
    }
    issuer_dn, subject_dn = _zcrypto_dn(cert.issuer), _zcrypto_dn(cert.subject)
    if issuer_dn:
        document["issuer_dn"] = issuer_dn
    document["validity"] = {"start": _rfc3339(cert.not_valid_before_utc),
                            "end": _rfc3339(cert.not_valid_after_utc),
                            "length": _validity_seconds(cert)}
    document["subject"] = _pkix_json(cert.subject)
    if subject_dn:
        document["subject_dn"] = subject_dn
    document["subject_key_info"] = _subject_key_info_json(cert)
    document["extensions"] = extensions
    if unknown:
        document["unknown_extensions"] = unknown
    # zcrypto only marks a signature valid after chain building, which inspect never does
    document["signature"] = {"signature_algorithm": algorithm, "value": _b64(cert.signature),
                             "valid": False, "self_signed": self_signed}
    document["fingerprint_md5"] = _hex_digest("md5", raw)
    document["fingerprint_sha1"] = _hex_digest("sha1", raw)
    document["fingerprint_sha256"] = _hex_digest("sha256", raw)
    document["tbs_noct_fingerprint"] = _hex_digest("sha256", _tbs_without_scts(cert))
    document["spki_subject_fingerprint"] = _hex_digest("sha256", _spki_der(cert),
                                                       _raw_subject(cert))
    document["tbs_fingerprint"] = _hex_digest("sha256", cert.tbs_certificate_bytes)
    document["validation_level"] = _validation_level(cert, self_signed)
    names = _json_names(cert)
    if names:
        document["names"] = names
    document["redacted"] = any(name.startswith("?") for name in names)
    return document


def _go_public_key_json(key: Any) -> Any:
    """How Go's encoder writes the crypto key structs (big integers as JSON numbers)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"N": numbers.n, "E": numbers.e}
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return {"Curve": {}, "X": numbers.x, "Y": numbers.y}
    if _is_dsa(key):
        params = key.parameters().parameter_numbers()
        return {"Parameters": {"P": params.p, "Q": params.q, "G": params.g},
                "Y": key.public_numbers().y}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _b64(_raw_public_key(key))
    return None


def _csr_json(csr: x509.CertificateSigningRequest) -> dict[str, Any]:
    """zcrypto's CertificateRequest has no JSON method, so step prints its Go field names."""
    extensions = _extensions(csr)
    dns, ips, emails, _ = _san_values(csr)
    extension_request = [1, 2, 840, 113549, 1, 9, 14]
    return {
        "Raw": _b64(_der(csr)),
        "RawTBSCertificateRequest": _b64(csr.tbs_certrequest_bytes),
        "RawSubjectPublicKeyInfo": _b64(_spki_der(csr)),
        "RawSubject": _b64(_raw_subject(csr)),
        "Version": 0,
        "Signature": _b64(csr.signature),
        "SignatureAlgorithm": _signature_algorithm_json(csr),
        "PublicKeyAlgorithm": {"name": _key_algorithm_name(csr)},
        "PublicKey": _go_public_key_json(_public_key(csr)),
        "Subject": _pkix_json(csr.subject),
        # Go reads the extension request as attribute/value pairs, which keeps only the OIDs
        "Attributes": [{"Type": extension_request,
                        "Value": [[{"type": e.oid.dotted_string} for e in extensions]]}]
        if extensions else None,
        "Extensions": [{"id": e.oid.dotted_string, "critical": e.critical,
                        **({"value": _b64(raw)} if (raw := _raw_extension_value(e)) else {})}
                       for e in extensions] or None,
        "ExtraExtensions": None,
        "DNSNames": dns or None,
        "EmailAddresses": emails or None,
        "IPAddresses": ips or None,
    }


def to_json(document: Any) -> str:
    """Go's ``json.Encoder`` with a two-space indent: UTF-8 as is, but <, >, &, U+2028 and
    U+2029 escaped."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text
