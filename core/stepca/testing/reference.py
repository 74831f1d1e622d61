"""Differential testing against smallstep's step-ca: the same request to two running CAs, and
views of their answers that keep what a client can notice (status, content type, JSON keys and
messages, the shape of each certificate) and drop what is bound to differ (keys, serials,
signatures, times).

The project's ``scripts/reference-stepca`` builds smallstep's binaries (``built_reference``
runs it); ``tests/differential`` and ``benchmarks/sidebyside.py`` start both servers on a PKI
that smallstep's own code wrote (``reference_pki``), each with a ca.json of its own
(``write_ca_json``)."""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from stepca.testing import PASSWORD, TestPKI

__all__ = ["Answer", "Endpoint", "ReferenceUnavailable", "answer_view", "body_layout",
           "built_reference", "certificate_shape", "clean_env", "load_pki", "reference_pki",
           "name_shape", "write_ca_json"]

PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
PROVISIONER_OID = "1.3.6.1.4.1.37476.9000.64.1"
# Universal tags of the string types a Name may hold.
_STRING_TYPES = {0x0C: "UTF8String", 0x13: "PrintableString", 0x14: "TeletexString",
                 0x16: "IA5String", 0x1C: "UniversalString", 0x1E: "BMPString"}


@dataclass(frozen=True)
class Answer:
    """What a server sent back: status, Content-Type and the body as bytes."""

    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Endpoint:
    """One running CA (smallstep's or ours) on 127.0.0.1, and the PKI it serves."""

    name: str
    port: int
    pki: TestPKI

    @property
    def root(self) -> Path:
        return self.pki.steppath / "certs" / "root_ca.crt"

    def audience(self, route: str) -> str:
        return f"https://127.0.0.1:{self.port}/1.0/{route}"

    def token(self, subject: str, route: str = "sign", **claims: Any) -> str:
        """A token for this CA as ``step ca token`` makes it (``stepca.testing.make_token``)."""
        from stepca.testing import make_token

        claims.setdefault("audience", self.audience(route))
        return make_token(self.pki, subject, **claims)

    def request(self, method: str, target: str, body: bytes | None = None, *,
                client_cert: tuple[Path, Path] | None = None, timeout: float = 30) -> Answer:
        """One HTTP/1.1 request on a new TLS connection; the target is sent as given
        (``//health`` and ``%2F`` stay as they are)."""
        context = ssl.create_default_context(cafile=str(self.root))
        if client_cert:
            context.load_cert_chain(*client_cert)
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context,
                                                 timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.getheader("Content-Type", ""),
                          response.read())
        finally:
            connection.close()


def load_pki(steppath: Path, fingerprint: str, password: bytes = PASSWORD) -> TestPKI:
    """A ``TestPKI`` over any PKI folder (written by smallstep's ``pki`` package or by ours),
    its first provisioner's key decrypted, so tokens can be made for it."""
    from stepca.jose import decrypt_pbes2, key_from_jwk
    from stepca.x509util import load_certificates

    ca_json = json.loads((steppath / "config" / "ca.json").read_text())
    entry = ca_json["authority"]["provisioners"][0]
    key = key_from_jwk(json.loads(decrypt_pbes2(entry["encryptedKey"], password)))
    root = load_certificates((steppath / "certs" / "root_ca.crt").read_bytes())[0]
    return TestPKI(steppath, ca_json, entry["name"], entry["key"]["kid"], key, fingerprint,
                   root, password)


class ReferenceUnavailable(Exception):
    """``scripts/reference-stepca`` cannot build here: the Debian packages are missing."""


def built_reference(script: Path) -> Path:
    """The folder holding smallstep's ``step-ca`` and ``refpki``, built (or found in its
    cache) by ``script``, the repository's ``scripts/reference-stepca``."""
    built = subprocess.run([str(script)], check=False, capture_output=True, text=True,
                           timeout=900)
    if built.returncode == 3:  # the script's code for missing packages
        raise ReferenceUnavailable(built.stderr.strip())
    if built.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{built.stderr}")
    return Path(built.stdout.strip().splitlines()[-1])


def reference_pki(bin_dir: Path, steppath: Path, password_file: Path, *,
                  name: str = "Test") -> TestPKI:
    """A PKI written by smallstep's own ``pki`` package (``refpki``), as their ``step ca init``
    writes it: a JWK provisioner ``admin`` whose key ``password_file`` encrypts."""
    made = subprocess.run([str(bin_dir / "refpki"), "-name", name, "-address", "127.0.0.1:9000",
                           "-dns", "localhost,127.0.0.1", "-provisioner", "admin",
                           "-password-file", str(password_file)],
                          env={**clean_env(), "STEPPATH": str(steppath)},
                          check=False, capture_output=True, text=True, timeout=120)
    fingerprints = re.findall(r"^[0-9a-f]{64}$", made.stdout, re.MULTILINE)
    if made.returncode != 0 or not fingerprints:
        raise RuntimeError(f"refpki failed:\n{made.stdout}\n{made.stderr}")
    return load_pki(steppath, fingerprints[-1])


def write_ca_json(folder: Path, ca_json: dict[str, Any], port: int, db: dict[str, str],
                  **extra: Any) -> Path:
    """``folder/ca.json``: a PKI's ca.json served on 127.0.0.1:``port`` with the store ``db``
    (and any other top-level keys in ``extra``), without its ``server`` block."""
    config = {key: value for key, value in ca_json.items() if key != "server"}
    config.update(address=f"127.0.0.1:{port}", db=db, **extra)
    path = folder / "ca.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent="\t"))
    return path


def clean_env() -> dict[str, str]:
    """This process's environment without ``STEP*``: neither server may read the caller's."""
    return {key: value for key, value in os.environ.items() if not key.startswith("STEP")}


def answer_view(answer: Answer) -> dict[str, Any]:
    """Status, Content-Type and the body: JSON with every certificate replaced by its shape,
    or the text as sent."""
    view: dict[str, Any] = {"status": answer.status, "content_type": answer.content_type}
    try:
        view["json"] = _shapes_for_certificates(answer.json())
    except ValueError:
        view["text"] = answer.body.decode("utf-8", "replace")
    return view


def body_layout(body: bytes) -> bytes:
    """The body with every JSON string emptied and every number zeroed: punctuation, white
    space and the final newline are what is left, so two encoders' output can be compared."""
    emptied = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', body)
    return re.sub(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", b"0", emptied)


def _shapes_for_certificates(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shapes_for_certificates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shapes_for_certificates(item) for item in value]
    if isinstance(value, str) and value.startswith(PEM_CERTIFICATE):
        return certificate_shape(x509.load_pem_x509_certificate(value.encode()))
    return value


def certificate_shape(certificate: x509.Certificate) -> dict[str, Any]:
    """What two CAs issuing for the same request should agree on, whatever their keys:
    names with their ASN.1 string types, validity length, serial size, key and signature
    algorithms, and each extension in order with its criticality and value."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key_type = f"EC {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        key_type = f"RSA {key.key_size}"
    else:
        key_type = type(key).__name__
    serial_bytes = (certificate.serial_number.bit_length() + 7) // 8
    return {
        "version": certificate.version.name,
        "subject": name_shape(certificate.subject.public_bytes()),
        "issuer": name_shape(certificate.issuer.public_bytes()),
        "validity_seconds": int((certificate.not_valid_after_utc
                                 - certificate.not_valid_before_utc).total_seconds()),
        # Random serials may start with zero bits: size them by the octets they may take.
        "serial_size": next(size for size in (8, 16, 20, 32) if serial_bytes <= size),
        "public_key": key_type,
        "signature_algorithm": certificate.signature_algorithm_oid.dotted_string,
        "extensions": [_extension_shape(extension, certificate)
                       for extension in certificate.extensions],
    }


def name_shape(der: bytes) -> list[list[tuple[str, str, str]]]:
    """A Name's RDNs in order, each (attribute OID, string type, value)."""
    from stepca._der import read

    _tag, rdns, _ = read(der)
    shape = []
    while rdns:
        _tag, rdn, rdns = read(rdns)
        attributes = []
        while rdn:
            _tag, attribute, rdn = read(rdn)
            _tag, oid, rest = read(attribute)
            tag, value, _ = read(rest)
            attributes.append((_dotted(oid), _STRING_TYPES.get(tag, f"tag {tag}"),
                               value.decode("utf-8", "replace")))
        shape.append(attributes)
    return shape


def _dotted(body: bytes) -> str:
    parts, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    first = min(parts[0] // 40, 2)
    return ".".join(str(p) for p in [first, parts[0] - 40 * first, *parts[1:]])


def _extension_shape(extension: x509.Extension[Any],
                     certificate: x509.Certificate) -> tuple[str, bool, Any]:
    value = extension.value
    shape: Any
    if isinstance(value, x509.SubjectAlternativeName):
        shape = [(type(name).__name__, str(name.value)) for name in value]
    elif isinstance(value, x509.KeyUsage):
        flags = ["digital_signature", "content_commitment", "key_encipherment",
                 "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"]
        shape = [flag for flag in flags if getattr(value, flag)]
        if value.key_agreement:
            shape += [flag for flag in ("encipher_only", "decipher_only") if getattr(value, flag)]
    elif isinstance(value, x509.ExtendedKeyUsage):
        shape = [usage.dotted_string for usage in value]
    elif isinstance(value, x509.BasicConstraints):
        shape = {"ca": value.ca, "path_length": value.path_length}
    elif isinstance(value, x509.SubjectKeyIdentifier):
        shape = ("SHA-1 of the key" if value.digest == _key_sha1(certificate)
                 else f"{len(value.digest)} octets")
    elif isinstance(value, x509.AuthorityKeyIdentifier):
        key_id = value.key_identifier
        shape = {"key_identifier": None if key_id is None
                 else "SHA-1 of its own key" if key_id == _key_sha1(certificate)
                 else f"{len(key_id)} octets",
                 "issuer": value.authority_cert_issuer is not None,
                 "serial": value.authority_cert_serial_number is not None}
    elif isinstance(value, x509.UnrecognizedExtension):
        shape = value.value.hex()
    else:
        shape = repr(value)
    return (extension.oid.dotted_string, extension.critical, shape)


def _key_sha1(certificate: x509.Certificate) -> bytes:
    """RFC 5280's method 1 key identifier, as Go and cryptography derive it."""
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
