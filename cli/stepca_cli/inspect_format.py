"""How ``step certificate inspect`` prints certificates: ``--short``, text and JSON."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from stepca.x509util import PROVISIONER_OID, ProvisionerExtension, SANs, subject_cn


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
    lines += _subject_block("Subject:     ", _name_lines(subject_cn(item.subject), SANs.of_csr(item)))
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


# -- the default text form (openssl-like, as step's certinfo prints it) ---------------------------

_SIG_NAMES = {"ecdsa-with-SHA256": "ECDSA-SHA256", "ecdsa-with-SHA384": "ECDSA-SHA384",
              "ecdsa-with-SHA512": "ECDSA-SHA512", "sha256WithRSAEncryption": "SHA256-RSA",
              "sha384WithRSAEncryption": "SHA384-RSA", "sha512WithRSAEncryption": "SHA512-RSA",
              "sha1WithRSAEncryption": "SHA1-RSA", "ed25519": "Ed25519",
              "RSASSA-PSS": "SHA256-RSAPSS"}
_KU = [("digital_signature", "Digital Signature"), ("content_commitment", "Content Commitment"),
       ("key_encipherment", "Key Encipherment"), ("data_encipherment", "Data Encipherment"),
       ("key_agreement", "Key Agreement"), ("key_cert_sign", "Certificate Sign"),
       ("crl_sign", "CRL Sign")]
_EKU = {"serverAuth": "Server Authentication", "clientAuth": "Client Authentication",
        "codeSigning": "Code Signing", "emailProtection": "E-mail Protection",
        "timeStamping": "Time Stamping", "OCSPSigning": "OCSP Signing"}
_DN = {"countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
       "organizationName": "O", "organizationalUnitName": "OU", "commonName": "CN",
       "emailAddress": "emailAddress", "serialNumber": "serialNumber",
       "streetAddress": "street", "postalCode": "postalCode", "domainComponent": "DC"}


def signature_name(item: x509.Certificate | x509.CertificateSigningRequest) -> str:
    name = item.signature_algorithm_oid._name
    return _SIG_NAMES.get(name, name)


def dn(name: x509.Name) -> str:
    """``C=..,O=..,CN=..`` in the order of the DER, comma-separated without spaces."""
    return ",".join(f"{_DN.get(a.oid._name, a.oid.dotted_string)}={a.value}" for a in name)


def _hex_lines(data: bytes, per_line: int, indent: int) -> list[str]:
    text = [f"{b:02x}" for b in data]
    return [" " * indent + ":".join(text[i:i + per_line]) + (":" if i + per_line < len(text)
                                                               else "")
            for i in range(0, len(text), per_line)]


def _date(value: Any) -> str:
    return value.strftime("%b %-d %H:%M:%S %Y UTC")


def _key_lines(key: Any) -> list[str]:
    pad = " " * 12
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        lines = [f"{pad}Public Key Algorithm: ECDSA",
                 f"{pad}    Public-Key: ({key.curve.key_size} bit)", f"{pad}    X:"]
        lines += _hex_lines(numbers.x.to_bytes(size, "big"), 15, 20)
        lines.append(f"{pad}    Y:")
        lines += _hex_lines(numbers.y.to_bytes(size, "big"), 15, 20)
        lines.append(f"{pad}    Curve: P-{key.curve.key_size}")
        return lines
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        modulus = numbers.n.to_bytes((numbers.n.bit_length() + 8) // 8, "big")
        return ([f"{pad}Public Key Algorithm: RSA", f"{pad}    Public-Key: ({key.key_size} bit)",
                 f"{pad}    Modulus:"] + _hex_lines(modulus, 15, 20)
                + [f"{pad}    Exponent: {numbers.e} (0x{numbers.e:x})"])
    if isinstance(key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives import serialization

        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return [f"{pad}Public Key Algorithm: Ed25519", f"{pad}    Public-Key: (256 bit)"] + \
            _hex_lines(raw, 15, 20)
    return [f"{pad}Public Key Algorithm: {type(key).__name__}"]


def _general_names(names: Any) -> list[str]:
    parts: dict[str, list[str]] = {}
    for name in names:
        if isinstance(name, x509.DNSName):
            parts.setdefault("DNS", []).append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            parts.setdefault("IP", []).append(f"IP Address:{name.value}")
        elif isinstance(name, x509.RFC822Name):
            parts.setdefault("email", []).append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            parts.setdefault("URI", []).append(f"URI:{name.value}")
        elif isinstance(name, x509.DirectoryName):
            parts.setdefault("DirName", []).append(f"DirName:{dn(name.value)}")
        else:
            parts.setdefault("other", []).append(f"othername:{name}")
    return [", ".join(values) for values in parts.values()]


def _extension_lines(ext: x509.Extension[Any]) -> list[str]:
    value, head, body = ext.value, " " * 12, " " * 16
    critical = " critical" if ext.critical else ""
    if isinstance(value, x509.KeyUsage):
        names = [label for attr, label in _KU if getattr(value, attr)]
        if value.key_agreement:
            names += [label for flag, label in (("encipher_only", "Encipher Only"),
                                                ("decipher_only", "Decipher Only"))
                      if getattr(value, flag)]
        return [f"{head}X509v3 Key Usage:{critical}", body + ", ".join(names)]
    if isinstance(value, x509.ExtendedKeyUsage):
        names = [_EKU.get(oid._name, oid.dotted_string) for oid in value]
        return [f"{head}X509v3 Extended Key Usage:{critical}", body + ", ".join(names)]
    if isinstance(value, x509.BasicConstraints):
        text = "CA:TRUE" if value.ca else "CA:FALSE"
        if value.ca and value.path_length is not None:
            text += f", pathlen:{value.path_length}"
        return [f"{head}X509v3 Basic Constraints:{critical}", body + text]
    if isinstance(value, x509.SubjectKeyIdentifier):
        return [f"{head}X509v3 Subject Key Identifier:{critical}",
                body + ":".join(f"{b:02X}" for b in value.digest)]
    if isinstance(value, x509.AuthorityKeyIdentifier):
        key_id = ":".join(f"{b:02X}" for b in value.key_identifier or b"")
        return [f"{head}X509v3 Authority Key Identifier:{critical}", body + key_id]
    if isinstance(value, x509.SubjectAlternativeName):
        return [f"{head}X509v3 Subject Alternative Name:{critical}"] + [
            body + line for line in _general_names(value)]
    if isinstance(value, x509.CRLDistributionPoints):
        lines = [f"{head}X509v3 CRL Distribution Points:{critical}"]
        for point in value:
            lines += [body + "Full Name:"] + [body + "  " + line
                                              for line in _general_names(point.full_name or [])]
        return lines
    if isinstance(value, x509.AuthorityInformationAccess):
        lines = [f"{head}Authority Information Access:{critical}"]
        for access in value:
            kind = "OCSP" if access.access_method == x509.oid.AuthorityInformationAccessOID.OCSP \
                else "CA Issuers"
            lines.append(f"{body}{kind} - URI:{access.access_location.value}")
        return lines
    if ext.oid == PROVISIONER_OID:
        try:
            prov = ProvisionerExtension.from_der(value.value)
        except ValueError:
            return [f"{head}X509v3 Step Provisioner:{critical}", body + "(malformed)"]
        lines = [f"{head}X509v3 Step Provisioner:{critical}", f"{body}Type: {prov.type_name}",
                 f"{body}Name: {prov.name}"]
        if prov.credential_id:
            lines.append(f"{body}CredentialID: {prov.credential_id}")
        pairs = list(prov.key_values)
        lines += [f"{body}{k}: {v}" for k, v in zip(pairs[::2], pairs[1::2], strict=False)]
        return lines
    raw = getattr(value, "value", None)
    lines = [f"{head}{ext.oid.dotted_string}:{critical}"]
    if isinstance(raw, bytes):
        lines += _hex_lines(raw, 18, 16)
    else:
        lines.append(body + str(value))
    return lines


def _even_hex(value: int) -> str:
    text = f"{value:x}"
    return text.zfill(len(text) + len(text) % 2)


def certificate_text(item: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """step's default ``inspect`` output for a certificate or a CSR."""
    if isinstance(item, x509.CertificateSigningRequest):
        lines = ["Certificate Request:", "    Data:", "        Version: 0 (0x0)",
                 f"        Subject: {dn(item.subject)}", "        Subject Public Key Info:"]
        lines += _key_lines(item.public_key())
        if len(item.extensions):
            lines.append("        Requested Extensions:")
            for ext in item.extensions:
                lines += _extension_lines(ext)
    else:
        serial = item.serial_number
        lines = ["Certificate:", "    Data:",
                 f"        Version: {item.version.value + 1} (0x{item.version.value:x})",
                 f"        Serial Number: {serial} (0x{_even_hex(serial)})",
                 f"        Signature Algorithm: {signature_name(item)}",
                 f"        Issuer: {dn(item.issuer)}", "        Validity",
                 f"            Not Before: {_date(item.not_valid_before_utc)}",
                 f"            Not After : {_date(item.not_valid_after_utc)}",
                 f"        Subject: {dn(item.subject)}", "        Subject Public Key Info:"]
        lines += _key_lines(item.public_key())
        if len(item.extensions):
            lines.append("        X509v3 extensions:")
            for ext in item.extensions:
                lines += _extension_lines(ext)
    lines.append(f"    Signature Algorithm: {signature_name(item)}")
    lines += _hex_lines(item.signature, 18, 9)
    return "\n".join(lines)


# -- --format json (the zcrypto schema step prints) -----------------------------------------------

_PKIX_FIELDS = {"commonName": "common_name", "countryName": "country",
                "organizationName": "organization", "organizationalUnitName":
                "organizational_unit", "localityName": "locality", "stateOrProvinceName":
                "province", "streetAddress": "street_address", "postalCode": "postal_code",
                "serialNumber": "serial_number", "domainComponent": "domain_component",
                "emailAddress": "email_address"}


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _pkix(name: x509.Name) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for attr in name:
        out.setdefault(_PKIX_FIELDS.get(attr.oid._name, attr.oid.dotted_string),
                       []).append(str(attr.value))
    return out


def _key_json(key: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes, serialization

    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    info: dict[str, Any] = {"fingerprint_sha256": digest.finalize().hex()}
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        numbers = key.public_numbers()
        info["key_algorithm"] = {"name": "ECDSA"}
        info["ecdsa_public_key"] = {"curve": f"P-{key.curve.key_size}",
                                    "length": key.curve.key_size,
                                    "x": _b64(numbers.x.to_bytes(size, "big")),
                                    "y": _b64(numbers.y.to_bytes(size, "big"))}
    elif isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        info["key_algorithm"] = {"name": "RSA"}
        info["rsa_public_key"] = {"exponent": numbers.e, "length": key.key_size,
                                  "modulus": _b64(numbers.n.to_bytes((key.key_size + 7) // 8,
                                                                     "big"))}
    elif isinstance(key, ed25519.Ed25519PublicKey):
        info["key_algorithm"] = {"name": "Ed25519"}
    return info


def _extensions_json(extensions: x509.Extensions) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out: dict[str, Any] = {}
    unknown: list[dict[str, Any]] = []
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.KeyUsage):
            usage = {attr: getattr(value, attr) for attr, _ in _KU if getattr(value, attr)}
            bits = [attr for attr, _ in _KU]
            usage["value"] = sum(1 << i for i, attr in enumerate(bits) if getattr(value, attr))
            out["key_usage"] = usage
        elif isinstance(value, x509.ExtendedKeyUsage):
            out["extended_key_usage"] = {oid._name: True for oid in value}
        elif isinstance(value, x509.BasicConstraints):
            out["basic_constraints"] = {"is_ca": value.ca, **(
                {"max_path_len": value.path_length} if value.path_length is not None else {})}
        elif isinstance(value, x509.SubjectAlternativeName):
            sans = SANs.of_csr_extension(value)
            out["subject_alt_name"] = {k: v for k, v in {
                "dns_names": list(sans.dns), "ip_addresses": [str(i) for i in sans.ips],
                "email_addresses": list(sans.emails),
                "uniform_resource_identifiers": list(sans.uris)}.items() if v}
        elif isinstance(value, x509.SubjectKeyIdentifier):
            out["subject_key_id"] = value.digest.hex()
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            out["authority_key_id"] = (value.key_identifier or b"").hex()
        elif isinstance(value, x509.CRLDistributionPoints):
            out["crl_distribution_points"] = [n.value for p in value for n in p.full_name or []]
        elif isinstance(value, x509.AuthorityInformationAccess):
            ocsp_oid = x509.oid.AuthorityInformationAccessOID.OCSP
            out["authority_info_access"] = {
                "ocsp_urls": [a.access_location.value for a in value
                              if a.access_method == ocsp_oid],
                "issuer_urls": [a.access_location.value for a in value
                                if a.access_method != ocsp_oid]}
        elif ext.oid == PROVISIONER_OID:
            try:
                prov = ProvisionerExtension.from_der(value.value)
                out["step_provisioner"] = {"type": prov.type_name, "name": prov.name,
                                           "credential_id": prov.credential_id,
                                           **({"key_value_pairs": list(prov.key_values)}
                                              if prov.key_values else {})}
            except ValueError:
                unknown.append({"id": ext.oid.dotted_string, "critical": ext.critical,
                                "value": _b64(value.value)})
        else:
            raw = getattr(value, "value", None)
            unknown.append({"id": ext.oid.dotted_string, "critical": ext.critical,
                            **({"value": _b64(raw)} if isinstance(raw, bytes) else {})})
    return out, unknown


def certificate_json(item: x509.Certificate | x509.CertificateSigningRequest) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes, serialization

    der = item.public_bytes(serialization.Encoding.DER)
    fingerprints = {}
    for label, algorithm in (("md5", hashes.MD5()), ("sha1", hashes.SHA1()),
                             ("sha256", hashes.SHA256())):
        digest = hashes.Hash(algorithm)
        digest.update(der)
        fingerprints[f"fingerprint_{label}"] = digest.finalize().hex()
    extensions, unknown = _extensions_json(item.extensions)
    signature_algorithm = {"name": signature_name(item),
                           "oid": [int(p) for p in item.signature_algorithm_oid.dotted_string
                                   .split(".")]}
    names = _name_lines(subject_cn(item.subject), SANs.of_csr(item))
    if isinstance(item, x509.CertificateSigningRequest):
        return {"version": 0, "signature_algorithm": signature_algorithm,
                "subject": _pkix(item.subject), "subject_dn": dn(item.subject),
                "subject_key_info": _key_json(item.public_key()), "extensions": extensions,
                "unknown_extensions": unknown,
                "signature": {"signature_algorithm": signature_algorithm,
                              "value": _b64(item.signature),
                              "valid": item.is_signature_valid},
                **fingerprints, "names": names}
    start, end = item.not_valid_before_utc, item.not_valid_after_utc
    return {
        "version": item.version.value + 1,
        "serial_number": str(item.serial_number),
        "signature_algorithm": signature_algorithm,
        "issuer": _pkix(item.issuer), "issuer_dn": dn(item.issuer),
        "validity": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "length": int((end - start).total_seconds())},
        "subject": _pkix(item.subject), "subject_dn": dn(item.subject),
        "subject_key_info": _key_json(item.public_key()),
        "extensions": extensions, "unknown_extensions": unknown,
        "signature": {"signature_algorithm": signature_algorithm,
                      "value": _b64(item.signature), "valid": _self_signed(item),
                      "self_signed": _self_signed(item)},
        **fingerprints, "names": names,
    }
