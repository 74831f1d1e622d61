"""``step certificate create|sign|verify|lint|bundle|format|key|p12|install|uninstall``: local
X.509 work that needs no CA server."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from stepca.timeutil import parse_time_or_duration, utcnow
from stepca.x509util import (
    SERVER_CLIENT_EKU,
    ca_key_usage,
    encrypt_private_key,
    generate_key,
    leaf_key_usage,
    load_certificates,
    load_private_key,
    signature_hash,
    write_private,
)

from stepca_cli import revocation_check, truststores, ui
from stepca_cli.commands.inspect import read_items
from stepca_cli.context import option_group
from stepca_cli.crypto_common import general_names
from stepca_cli.errors import StepError, incompatible, required_flag
from stepca_cli.inspect_format import short_text

LEAF_VALIDITY = timedelta(hours=24)
CA_VALIDITY = timedelta(hours=87600)  # step's 10 years
SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"


class ExitError(StepError):
    """A StepError with its own exit code (``lint`` findings)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- shared helpers --------------------------------------------------------------------------------

def _read(path: str, what: str = "") -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StepError(f"open {path}: no such file or directory") from None
    except OSError as exc:
        raise StepError(f"error reading {what or path}: {exc.strerror}") from None


def _certificates(path: str) -> list[x509.Certificate]:
    try:
        certs = load_certificates(_read(path))
    except ValueError:
        raise StepError(f"error parsing {path}: it is not a PEM or DER certificate") from None
    if not certs:
        raise StepError(f"error parsing {path}: no certificate found")
    return certs


def _csr(path: str) -> x509.CertificateSigningRequest:
    data = _read(path)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise StepError(f"error parsing {path}: it is not a certificate request") from None


def _private_key(path: str, password_file: str | None, flag: str, command: str) -> Any:
    """Load a key file, asking for its password (on a terminal only) when it is encrypted."""
    data = _read(path)
    password = ui.read_password_file(password_file, flag)
    if password is None and b"ENCRYPTED" in data:
        password = ui.ask_password(f"Please enter the password to decrypt {path}", flag=flag,
                                   command=command)
    if password is not None and b"ENCRYPTED" not in data:
        password = None  # step ignores a password for a plaintext key
    try:
        return load_private_key(data, password)
    except ValueError as exc:
        raise StepError(f"error decrypting {path}: {exc}") from None


def _new_key_password(password_file: str | None, no_password: bool, insecure: bool,
                      command: str, what: str = "the private key") -> bytes | None:
    """The password protecting a new key or file; ``None`` only with --no-password --insecure."""
    if no_password:
        if not insecure:
            raise StepError("flag '--no-password' requires the '--insecure' flag")
        if password_file:
            raise incompatible("no-password", "password-file")
        return None
    password = ui.read_password_file(password_file, "password-file")
    if password is None:
        password = ui.ask_password(f"Please enter the password to encrypt {what}",
                                   flag="password-file", command=command, confirm=True)
    if not password:
        raise StepError("the password cannot be empty")
    return password


def _write(path: str, data: bytes, force: bool, mode: int = 0o600) -> None:
    target = Path(path)
    ui.check_overwrite(target, force)
    try:
        write_private(target, data, mode=mode)
    except OSError as exc:
        raise StepError(f"error writing {path}: {exc.strerror}") from None


def _time(value: str | None, flag: str, now: datetime, default: datetime) -> datetime:
    if not value:
        return default
    try:
        return parse_time_or_duration(value, relative_to=now)
    except ValueError:
        raise StepError(f"invalid value '{value}' for flag '--{flag}'") from None


def _validity(not_before: str | None, not_after: str | None,
              default: timedelta) -> tuple[datetime, datetime]:
    now = utcnow().replace(microsecond=0)
    start = _time(not_before, "not-before", now, now)
    end = _time(not_after, "not-after", now, start + default)
    if end <= start:
        raise StepError("invalid value for flag '--not-after': it must be after '--not-before'")
    return start, end


def _same_key(cert: x509.Certificate, key: Any) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(serialization.Encoding.DER, spki)
                == key.public_key().public_bytes(serialization.Encoding.DER, spki))


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _check_issuer(cert: x509.Certificate, key: Any, path: str, *, signs_ca: bool) -> None:
    if not _same_key(cert, key):
        raise StepError(f"the issuer key does not match the certificate {path}")
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise StepError(f"the issuer certificate {path} is not a certificate authority")
    if signs_ca and constraints.path_length == 0:
        raise StepError(f"the issuer certificate {path} has a path length of 0 and cannot sign "
                        "an intermediate certificate")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise StepError(f"the issuer certificate {path} is not allowed to sign certificates")


def _key_ids(builder: x509.CertificateBuilder, public_key: Any,
             issuer: x509.Certificate | None, issuer_public: Any) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
    if issuer is not None:
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public)
        builder = builder.add_extension(aki, False)
    return builder


def _pem(cert: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_extensions(builder: x509.CertificateBuilder, path_len: int | None) -> Any:
    return (builder.add_extension(x509.KeyUsage(**_ku_kwargs(ca_key_usage())), True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), True))


def _ku_kwargs(usage: x509.KeyUsage) -> dict[str, bool]:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign")
    values = {name: getattr(usage, name) for name in names}
    values["encipher_only"] = values["decipher_only"] = False
    return values


def _leaf_extensions(builder: x509.CertificateBuilder, public_key: Any,
                     names: list[x509.GeneralName]) -> Any:
    builder = builder.add_extension(leaf_key_usage(public_key), True)
    builder = builder.add_extension(SERVER_CLIENT_EKU, False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder


def _cn_name(subject: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])


force_option = click.option("-f", "--force", is_flag=True,
                            help="Force the overwrite of files without asking.")


# -- create ----------------------------------------------------------------------------------------

PROFILES = ("leaf", "intermediate-ca", "root-ca", "self-signed")
CREATE_USAGE = "step certificate create <subject> <crt-file> <key-file>"


@click.command(name="create")
@click.argument("subject")
@click.argument("crt_file", metavar="CRT-FILE")
@click.argument("key_file", metavar="KEY-FILE", required=False)
@click.option("--profile", type=click.Choice(PROFILES), default=None,
              help="The certificate profile: leaf (default), intermediate-ca, root-ca or "
                   "self-signed.")
@click.option("--csr", "make_csr", is_flag=True,
              help="Generate a certificate signing request instead of a certificate.")
@click.option("--ca", "ca_file", metavar="FILE", help="The certificate of the issuer.")
@click.option("--ca-key", metavar="FILE", help="The private key of the issuer.")
@click.option("--ca-password-file", metavar="FILE",
              help="The file with the password to decrypt the issuer key.")
@click.option("--key", "key_in", metavar="FILE",
              help="Use this existing private key instead of generating one.")
@click.option("--kty", type=click.Choice(["EC", "OKP", "RSA"]), default=None,
              help="The key type: EC (default), OKP or RSA.")
@click.option("--curve", "--crv", "curve", default=None,
              help="The curve: P-256 (default), P-384, P-521 or Ed25519 (OKP).")
@click.option("--size", type=int, default=None, help="The RSA key size in bits (2048).")
@click.option("--san", multiple=True, metavar="NAME",
              help="A subject alternative name (DNS name, IP, email or URI); repeatable.")
@click.option("--not-before", metavar="TIME|DURATION",
              help="Validity start: an RFC 3339 time or a duration from now (e.g. -5m).")
@click.option("--not-after", metavar="TIME|DURATION",
              help="Validity end: an RFC 3339 time or a duration from now (e.g. 720h).")
@click.option("--password-file", metavar="FILE",
              help="The file with the password to encrypt the new key (or decrypt --key).")
@click.option("--no-password", is_flag=True,
              help="Do not encrypt the private key (requires --insecure).")
@click.option("--insecure", is_flag=True, help="Allow --no-password and RSA keys under 2048.")
@click.option("--bundle", is_flag=True, help="Append the issuer certificate (leaf only).")
@click.option("--subtle", is_flag=True, help="Allow the self-signed profile.")
@force_option
def create(subject: str, crt_file: str, key_file: str | None, profile: str | None,
           make_csr: bool, ca_file: str | None, ca_key: str | None,
           ca_password_file: str | None, key_in: str | None, kty: str | None,
           curve: str | None, size: int | None, san: tuple[str, ...], not_before: str | None,
           not_after: str | None, password_file: str | None, no_password: bool,
           insecure: bool, bundle: bool, subtle: bool, force: bool) -> None:
    """create a certificate or certificate signing request"""
    command = "step certificate create"
    if key_file is None and key_in is None:
        raise StepError(f"not enough positional arguments were provided in '{CREATE_USAGE}'")
    if key_file is not None and key_in is not None:
        # the existing key stays where it is: never write a (decrypted) copy of it
        raise StepError("positional argument <key-file> cannot be used with the '--key' flag")
    if key_file is not None and Path(key_file).resolve() == Path(crt_file).resolve():
        raise StepError(f"positional arguments <crt-file> and <key-file> cannot be equal in "
                        f"'{CREATE_USAGE}'")
    if no_password and not insecure:
        raise StepError("flag '--no-password' requires the '--insecure' flag")
    if make_csr:
        for flag, value in (("ca", ca_file), ("ca-key", ca_key), ("not-before", not_before),
                            ("not-after", not_after), ("bundle", bundle)):
            if value:
                raise incompatible("csr", flag)
        if profile not in (None, "leaf"):
            raise incompatible("csr", "profile")
    profile = profile or "leaf"
    if profile == "self-signed" and not subtle:
        raise StepError("'--profile self-signed' requires the '--subtle' flag")
    if profile in ("leaf", "intermediate-ca") and not make_csr:
        if not ca_file:
            raise required_flag(command, "ca")
        if not ca_key:
            raise required_flag(command, "ca-key")
    if profile in ("root-ca", "self-signed") and (ca_file or ca_key):
        raise incompatible("ca" if ca_file else "ca-key", f"profile {profile}")
    if bundle and (profile != "leaf" or not ca_file):
        raise StepError("flag '--bundle' requires the '--ca' flag and the leaf profile")

    # the issuer first, so a wrong CA password fails before a key is generated
    issuer = issuer_key = None
    if ca_file and ca_key:
        issuer = _certificates(ca_file)[0]
        issuer_key = _private_key(ca_key, ca_password_file, "ca-password-file", command)
        _check_issuer(issuer, issuer_key, ca_file, signs_ca=profile == "intermediate-ca")

    if key_in:
        key = _private_key(key_in, password_file, "password-file", command)
        key_password = None
    else:
        key = _generate(kty, curve, size, insecure)
        key_password = _new_key_password(password_file, no_password, insecure, command)

    names = list(san) or ([subject] if profile in ("leaf", "self-signed") else [])
    general = general_names(names)
    if make_csr:
        builder = x509.CertificateSigningRequestBuilder().subject_name(_cn_name(subject))
        if general:
            builder = builder.add_extension(x509.SubjectAlternativeName(general), False)
        data = _pem(builder.sign(key, signature_hash(key)))
        label = "certificate signing request"
    else:
        default = CA_VALIDITY if profile.endswith("-ca") else LEAF_VALIDITY
        start, end = _validity(not_before, not_after, default)
        name = _cn_name(subject)
        builder = (x509.CertificateBuilder().subject_name(name)
                   .issuer_name(issuer.subject if issuer else name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end))
        if profile in ("leaf", "self-signed"):
            builder = _leaf_extensions(builder, key.public_key(), general)
        else:
            builder = _ca_extensions(builder, 1 if profile == "root-ca" else 0)
            if general:
                builder = builder.add_extension(x509.SubjectAlternativeName(general), False)
        signer = issuer_key if issuer_key is not None else key
        builder = _key_ids(builder, key.public_key(), issuer, signer.public_key())
        cert = builder.sign(signer, signature_hash(signer))
        data = _pem(cert) + (_pem(issuer) if bundle and issuer else b"")
        label = "certificate"

    if key_file is not None:
        ui.check_overwrite(Path(key_file), force)
    _write(crt_file, data, force)
    ui.info(f"Your {label} has been saved in {crt_file}.")
    if key_file is not None:
        write_private(key_file, encrypt_private_key(key, key_password))
        ui.info(f"Your private key has been saved in {key_file}.")


def _generate(kty: str | None, curve: str | None, size: int | None, insecure: bool) -> Any:
    if kty is None and curve is not None:
        raise StepError("flag '--curve' requires the '--kty' flag")
    if kty is None and size is not None:
        raise StepError("flag '--size' requires the '--kty' flag")
    kty = kty or "EC"
    if size is not None and kty != "RSA":
        raise incompatible("size", f"kty {kty}")
    if kty == "RSA" and size is not None and size < 2048 and not insecure:
        raise StepError("flag '--size' requires at least 2048 unless '--insecure' flag is "
                        "provided")
    default_curve = "Ed25519" if kty == "OKP" else "P-256"
    try:
        return generate_key(kty, curve=curve or default_curve, size=size or 2048)
    except ValueError as exc:
        raise StepError(str(exc)) from None


# -- sign ------------------------------------------------------------------------------------------

@click.command(name="sign")
@click.argument("csr_file", metavar="CSR-FILE")
@click.argument("crt_file", metavar="CRT-FILE")
@click.argument("key_file", metavar="KEY-FILE")
@click.option("--profile", type=click.Choice(["leaf", "intermediate-ca", "csr"]), default="leaf",
              help="The certificate profile: leaf (default), intermediate-ca or csr (copy the "
                   "request's subject and extensions).")
@click.option("--not-before", metavar="TIME|DURATION",
              help="Validity start: an RFC 3339 time or a duration from now.")
@click.option("--not-after", metavar="TIME|DURATION",
              help="Validity end: an RFC 3339 time or a duration from now.")
@click.option("--password-file", metavar="FILE",
              help="The file with the password to decrypt the issuer key.")
@click.option("--bundle", is_flag=True, help="Append the issuer certificate chain.")
@click.option("--path-len", type=int, default=0, show_default=True,
              help="The path length of an intermediate-ca (-1 for unlimited).")
@click.option("--omit-cn-san", is_flag=True,
              help="Do not add the Common Name as a SAN when the request has no SANs.")
def sign(csr_file: str, crt_file: str, key_file: str, profile: str, not_before: str | None,
         not_after: str | None, password_file: str | None, bundle: bool, path_len: int,
         omit_cn_san: bool) -> None:
    """sign a certificate signing request (CSR)"""
    csr = _csr(csr_file)
    if not csr.is_signature_valid:
        raise StepError(f"error validating {csr_file}: the certificate request signature is "
                        "invalid")
    chain = _certificates(crt_file)
    issuer = chain[0]
    issuer_key = _private_key(key_file, password_file, "password-file", "step certificate sign")
    _check_issuer(issuer, issuer_key, crt_file, signs_ca=profile == "intermediate-ca")
    default = CA_VALIDITY if profile == "intermediate-ca" else LEAF_VALIDITY
    start, end = _validity(not_before, not_after, default)
    public_key = csr.public_key()
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer.subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end))
    if profile == "csr":
        for ext in csr.extensions:
            if not isinstance(ext.value, (x509.SubjectKeyIdentifier,
                                          x509.AuthorityKeyIdentifier)):
                builder = builder.add_extension(ext.value, ext.critical)
    else:
        try:
            names = list(csr.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            names = []
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names and cns and not omit_cn_san:
            names = general_names([str(cns[0].value)])
        if profile == "leaf":
            builder = _leaf_extensions(builder, public_key, names)
        else:
            builder = _ca_extensions(builder, None if path_len < 0 else path_len)
            if names:
                builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    builder = _key_ids(builder, public_key, issuer, issuer_key.public_key())
    cert = builder.sign(issuer_key, signature_hash(issuer_key))
    out = _pem(cert) + (b"".join(_pem(c) for c in chain) if bundle else b"")
    sys.stdout.write(out.decode())


# -- verify ----------------------------------------------------------------------------------------

def _pem_blocks(data: bytes) -> list[x509.Certificate]:
    """Every parseable certificate: one bad entry must not hide a whole trust store."""
    certs = []
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data,
                            re.DOTALL):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            continue
    if not certs and b"-----BEGIN" not in data:
        try:
            certs.append(x509.load_der_x509_certificate(data))
        except ValueError:
            pass
    return certs


def load_roots(roots: str | None) -> list[x509.Certificate]:
    """Roots from a file, a comma-separated list of files, a directory, or the system store."""
    paths: list[Path] = []
    for part in (roots or SYSTEM_ROOTS).split(","):
        path = Path(part.strip())
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.is_file())
        else:
            paths.append(path)
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs += _pem_blocks(path.read_bytes())
        except FileNotFoundError:
            raise StepError(f"open {path}: no such file or directory") from None
        except OSError as exc:
            raise StepError(f"error reading {path}: {exc.strerror}") from None
    if not certs:
        raise StepError(f"error reading roots: no certificate found in {roots or SYSTEM_ROOTS}")
    return certs


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _names_of(cert: x509.Certificate) -> list[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([str(n) for n in sans.get_values_for_type(x509.DNSName)]
            + [str(n) for n in sans.get_values_for_type(x509.IPAddress)])


def _host_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def _diagnose(leaf: x509.Certificate, chain: list[x509.Certificate], host: str | None,
              now: datetime, error: str) -> str:
    """A Go-x509-style reason for a failed verification (clearer than the verifier's)."""
    for cert in [leaf, *chain]:
        if now > cert.not_valid_after_utc:
            return (f"x509: certificate has expired or is not yet valid: current time "
                    f"{_utc(now)} is after {_utc(cert.not_valid_after_utc)}")
        if now < cert.not_valid_before_utc:
            return (f"x509: certificate has expired or is not yet valid: current time "
                    f"{_utc(now)} is before {_utc(cert.not_valid_before_utc)}")
    if host:
        names = _names_of(leaf)
        if not any(_host_matches(n, host) for n in names):
            if not names:
                return "x509: certificate is not valid for any names"
            return f"x509: certificate is valid for {', '.join(names)}, not {host}"
    error = re.sub(r"^(validation failed: )?(candidates exhausted: )?", "", error)
    lowered = error.lower()
    if "name constraint" in lowered or "no permitted" in lowered or "excluded" in lowered:
        return ("x509: a root or intermediate certificate is not authorized to sign for this "
                f"name: {error}")
    if host:
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if (ExtendedKeyUsageOID.SERVER_AUTH not in usages
                    and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages):
                return ("x509: certificate specifies an incompatible key usage (it is not "
                        "valid for server authentication)")
        except x509.ExtensionNotFound:
            pass
    if "candidates exhausted" in lowered or "no issuer" in lowered:
        return ("x509: certificate signed by unknown authority (no chain to a trusted root: "
                "is an intermediate certificate missing?)")
    return error


def _any_eku_policy(base: verification.ExtensionPolicy) -> verification.ExtensionPolicy:
    # step accepts any extended key usage when no host is given
    return base.may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, None)


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 roots: list[x509.Certificate], host: str | None) -> list[x509.Certificate]:
    """The validated chain, leaf first; ``StepError`` saying why when there is none."""
    now = utcnow()
    builder = verification.PolicyBuilder().store(verification.Store(roots)).time(now)
    try:
        if host:
            subject: verification.DNSName | verification.IPAddress
            try:
                subject = verification.IPAddress(ipaddress.ip_address(host.strip("[]")))
            except ValueError:
                subject = verification.DNSName(host)
            return list(builder.build_server_verifier(subject).verify(leaf, intermediates))
        else:
            builder = builder.extension_policies(
                ca_policy=_any_eku_policy(verification.ExtensionPolicy.webpki_defaults_ca()),
                ee_policy=_any_eku_policy(verification.ExtensionPolicy.webpki_defaults_ee()))
            return builder.build_client_verifier().verify(leaf, intermediates).chain
    except verification.VerificationError as exc:
        raise StepError("failed to verify certificate: "
                        + _diagnose(leaf, intermediates, host, now, str(exc))) from None
    except ValueError as exc:
        raise StepError(f"failed to verify certificate: {exc}") from None


@click.command(name="verify")
@click.argument("source", metavar="CRT-FILE|URL")
@click.option("--roots", metavar="FILE",
              help="Root certificates: a file, comma-separated files or a directory "
                   f"(default {SYSTEM_ROOTS}).")
@click.option("--host", metavar="NAME",
              help="The DNS name or IP the certificate must be valid for (server "
                   "authentication).")
@click.option("--servername", metavar="NAME", help="The TLS server name (SNI) for URLs.")
@click.option("--verify-crl", is_flag=True,
              help="Check that the issuer's CRL does not list the certificate.")
@click.option("--crl-endpoint", metavar="URL",
              help="The CRL to check (default: the certificate's CRL distribution point).")
@click.option("--verify-ocsp", is_flag=True,
              help="Ask the issuer's OCSP responder whether the certificate is good.")
@click.option("--ocsp-endpoint", metavar="URL",
              help="The OCSP responder to ask (default: the certificate's OCSP URL).")
@click.option("--issuing-ca", metavar="FILE",
              help="The issuer for the CRL and OCSP checks (default: the validated chain's).")
@click.option("-v", "--verbose", is_flag=True, help="Print the checks that passed.")
def verify(source: str, roots: str | None, host: str | None, servername: str | None,
           verify_crl: bool, crl_endpoint: str | None, verify_ocsp: bool,
           ocsp_endpoint: str | None, issuing_ca: str | None, verbose: bool) -> None:
    """verify a certificate"""
    is_url = "://" in source
    items = read_items(source, roots=roots, servername=servername, insecure=True)
    certs = [c for c in items if isinstance(c, x509.Certificate)]
    if not certs:
        raise StepError(f"error parsing {source}: it is not a certificate")
    if is_url and not host:
        host = servername or urlparse(source).hostname
    trusted = load_roots(roots)
    chain = verify_chain(certs[0], certs[1:], trusted, host)
    passed = ["certificate validated against roots"]
    if host:
        passed.append("certificate host name validated")
    if verify_crl or verify_ocsp:
        leaf, issuer = chain[0], _revocation_issuer(chain, issuing_ca)
        if verify_crl:
            url = crl_endpoint or revocation_check.crl_url(leaf)
            revocation_check.check_crl(leaf, issuer, url, roots=trusted)
            passed.append(f"certificate not revoked in CRL {url}")
        if verify_ocsp:
            url = ocsp_endpoint or revocation_check.ocsp_url(leaf)
            revocation_check.check_ocsp(leaf, issuer, url, roots=trusted)
            passed.append(f"certificate status is good according OCSP {url}")  # sic, as step
    if verbose:
        click.echo("\n".join([*passed, "certficiate is valid"]))  # sic: step's spelling


def _revocation_issuer(chain: list[x509.Certificate], issuing_ca: str | None) -> x509.Certificate:
    if issuing_ca:
        return _certificates(issuing_ca)[0]
    if len(chain) < 2:
        raise StepError("failed to verify certificate: a self-signed certificate has no issuer "
                        "to ask about revocation")
    return chain[1]


# -- lint ------------------------------------------------------------------------------------------

@click.command(name="lint")
@click.argument("source", metavar="CRT-FILE|URL")
@click.option("--roots", metavar="FILE", help="Root certificates to reach a TLS server with.")
@click.option("--servername", metavar="NAME", help="The TLS server name (SNI) for URLs.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's certificate (URLs).")
def lint(source: str, roots: str | None, servername: str | None, insecure: bool) -> None:
    """lint certificate details"""
    if "://" in source:
        items = read_items(source, roots=roots, servername=servername, insecure=insecure)
        der = items[0].public_bytes(serialization.Encoding.DER)
    else:
        # raw bytes: a linter must see certificates that cryptography would refuse to parse
        data = sys.stdin.buffer.read() if source == "-" else _read(source)
        der = _first_der(data, source)
    report = lint_certificate(der)
    click.echo(json.dumps(report, indent=1))
    errors = [f for f in report["findings"] if f["severity"] in ("FATAL", "ERROR")]
    if errors:
        raise ExitError("", 1)


def _first_der(data: bytes, name: str) -> bytes:
    if b"-----BEGIN" not in data:
        return data
    match = re.search(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", data,
                      re.DOTALL)
    if not match:
        raise StepError(f"error parsing {name}: no certificate found")
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except ValueError:
        raise StepError(f"error parsing {name}: invalid PEM") from None


def lint_certificate(der: bytes) -> dict[str, Any]:
    """pkilint's RFC 5280 certificate validations, as a JSON-ready report."""
    try:
        from pkilint import loader
        from pkilint.pkix import certificate, extension, name
    except ImportError:
        raise StepError("step certificate lint needs pkilint: pip install pkilint") from None
    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS,
                                               extension.EXTENSION_MAPPINGS),
        [certificate.create_issuer_validator_container([]),
         certificate.create_validity_validator_container(),
         certificate.create_subject_validator_container([]),
         certificate.create_extensions_validator_container([]),
         certificate.create_spki_validator_container([])])
    try:
        document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    except ValueError as exc:
        raise StepError(f"error parsing certificate: {exc}") from None
    findings = []
    for result in validator.validate(document.root):
        for description in result.finding_descriptions:
            findings.append({"severity": description.finding.severity.name,
                             "code": description.finding.code,
                             "message": description.message,
                             "node": result.node.path,
                             "validator": str(result.validator)})
    return {"linter": "pkilint RFC 5280", "findings": findings,
            "result": "fail" if any(f["severity"] in ("FATAL", "ERROR") for f in findings)
            else "pass"}


# -- bundle, format, key ---------------------------------------------------------------------------

@click.command(name="bundle")
@click.argument("crt_file", metavar="CRT-FILE")
@click.argument("ca_file", metavar="CA")
@click.argument("bundle_file", metavar="BUNDLE-FILE")
@force_option
def bundle(crt_file: str, ca_file: str, bundle_file: str, force: bool) -> None:
    """bundle a certificate with intermediate certificate(s) needed for certificate path
    validation"""
    data = _pem(_certificates(crt_file)[0]) + _pem(_certificates(ca_file)[0])
    _write(bundle_file, data, force)
    ui.info(f"Your certificate has been saved in {bundle_file}.")


@click.command(name="format")
@click.argument("source", metavar="CRT-FILE")
@click.option("--out", metavar="FILE", help="Write to this file instead of stdout.")
@force_option
def format_(source: str, out: str | None, force: bool) -> None:
    """reformat certificate (PEM to DER, DER to PEM)"""
    data = _read(source)
    items: list[Any]
    try:
        if b"CERTIFICATE REQUEST" in data:
            items = [x509.load_pem_x509_csr(data)]
        elif b"-----BEGIN" in data:
            items = x509.load_pem_x509_certificates(data)
        else:
            try:
                items = [x509.load_der_x509_certificate(data)]
            except ValueError:
                items = [x509.load_der_x509_csr(data)]
    except ValueError:
        raise StepError(f"error parsing {source}: it is not a certificate or certificate "
                        "request") from None
    pem_in = b"-----BEGIN" in data  # like step, only the first PEM block is converted
    encoding = serialization.Encoding.DER if pem_in else serialization.Encoding.PEM
    output = items[0].public_bytes(encoding)
    if out:
        _write(out, output, force)
        ui.info(f"Your certificate has been saved in {out}.")
    else:
        sys.stdout.buffer.write(output)
        sys.stdout.flush()


@click.command(name="key")
@click.argument("source", metavar="CRT-FILE|CSR-FILE")
@click.option("--out", metavar="FILE", help="Write the public key to this file.")
@force_option
def key(source: str, out: str | None, force: bool) -> None:
    """print public key embedded in a certificate"""
    item = read_items(source)[0]
    data = item.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    if out:
        _write(out, data, force)
        ui.info(f"Your public key has been saved in {out}.")
    else:
        click.echo(data.decode(), nl=False)


# -- p12 -------------------------------------------------------------------------------------------

P12_ROUNDS = 600_000


@click.command(name="p12")
@click.argument("p12_file", metavar="P12-PATH")
@click.argument("crt_file", metavar="CRT-PATH", required=False)
@click.argument("key_file", metavar="KEY-PATH", required=False)
@click.option("--ca", "cas", multiple=True, metavar="FILE",
              help="A CA certificate (chain) file to include; repeatable.")
@click.option("--password-file", metavar="FILE",
              help="The file with the password to encrypt the PKCS#12 file.")
@click.option("--key-password-file", metavar="FILE",
              help="The file with the password to decrypt the private key.")
@click.option("--no-password", is_flag=True,
              help="Do not encrypt the PKCS#12 file (requires --insecure).")
@click.option("--insecure", is_flag=True, help="Allow --no-password.")
@click.option("--legacy", is_flag=True,
              help="Use the old SHA-1/3DES encryption some old software needs.")
@click.option("--name", "friendly_name", metavar="NAME", help="The friendly name of the entry.")
@force_option
def p12(p12_file: str, crt_file: str | None, key_file: str | None, cas: tuple[str, ...],
        password_file: str | None, key_password_file: str | None, no_password: bool,
        insecure: bool, legacy: bool, friendly_name: str | None, force: bool) -> None:
    """package a certificate and keys into a .p12 file"""
    command = "step certificate p12"
    if crt_file and not key_file:
        raise StepError("not enough positional arguments were provided in 'step certificate "
                        "p12 <p12-path> [<crt-path>] [<key-path>]'")
    if not crt_file and not cas:
        raise StepError("flag '--ca' is required unless a certificate and key are provided")
    ca_certs = [c for path in cas for c in _certificates(path)]
    password = _new_key_password(password_file, no_password, insecure, command,
                                 what="the .p12 file")
    encryption = _p12_encryption(password, legacy)
    if crt_file and key_file:
        chain = _certificates(crt_file)
        private = _private_key(key_file, key_password_file, "key-password-file", command)
        if not _same_key(chain[0], private):
            raise StepError(f"the private key {key_file} does not match the certificate "
                            f"{crt_file}")
        label = (friendly_name or "").encode() or None
        data = pkcs12.serialize_key_and_certificates(label, private, chain[0],
                                                     chain[1:] + ca_certs, encryption)
    else:
        # only CAs: a trust store (Java reads the trusted-cert attribute)
        entries = [pkcs12.PKCS12Certificate(c, (friendly_name or _cn(c) or f"ca{i}").encode())
                   for i, c in enumerate(ca_certs)]
        data = pkcs12.serialize_java_truststore(entries, encryption)
    _write(p12_file, data, force)
    ui.info(f"Your .p12 bundle has been saved as {p12_file}.")


def _cn(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _p12_encryption(password: bytes | None, legacy: bool) -> Any:
    if password is None:
        return serialization.NoEncryption()
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if legacy:
        builder = (builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                   .hmac_hash(hashes.SHA1()).kdf_rounds(2048))
    else:
        builder = (builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                   .hmac_hash(hashes.SHA256()).kdf_rounds(P12_ROUNDS))
    return builder.build(password)


# -- install / uninstall ---------------------------------------------------------------------------

def _one_certificate(path: str) -> x509.Certificate:
    return _certificates(path)[0]


_trust_store_options = option_group(
    click.option("--prefix", metavar="NAME",
                 help="Name the entries NAME<serial> (default: '<CN> <serial>')."),
    click.option("--java", is_flag=True, help="Use the Java trust store (cacerts of "
                                               "$JAVA_HOME or of keytool's JDK)."),
    click.option("--firefox", is_flag=True,
                 help="Use the NSS databases: ~/.pki/nssdb and the Firefox profiles."),
    click.option("--no-system", is_flag=True, help="Leave the system trust store alone."),
    click.option("--all", "all_", is_flag=True,
                 help="Use the system, NSS and Java trust stores."),
    click.option("--root-dir", metavar="DIR",
                 help="Use a private root directory DIR (its "
                      "usr/local/share/ca-certificates and etc/ssl/certs bundle) instead of "
                      "the system store."),
    click.option("--java-keystore", metavar="FILE",
                 help="Use the Java keystore FILE (password 'changeit') instead of the "
                      "JDK's cacerts; implies --java."),
)


@click.command(name="install")
@click.argument("crt_file", metavar="CRT-FILE")
@_trust_store_options
def install(crt_file: str, prefix: str | None, java: bool, firefox: bool, no_system: bool,
            all_: bool, root_dir: str | None, java_keystore: str | None) -> None:
    """install a root certificate in the supported trust stores"""
    cert = _one_certificate(crt_file)
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise StepError(f"{crt_file} is not a CA certificate: only CA certificates can be "
                        "trusted as roots")
    stores = truststores.select(root_dir=root_dir, java=java, firefox=firefox,
                                no_system=no_system, all_=all_, java_keystore=java_keystore,
                                installing=True)
    name = truststores.entry_name(cert, prefix)
    for store in stores:
        store.add(cert, name)
        ui.info(f"installed in {store.label}")
    click.echo(f"Certificate {crt_file} has been installed.")
    click.echo(short_text(cert))


@click.command(name="uninstall")
@click.argument("crt_file", metavar="CRT-FILE")
@_trust_store_options
def uninstall(crt_file: str, prefix: str | None, java: bool, firefox: bool, no_system: bool,
              all_: bool, root_dir: str | None, java_keystore: str | None) -> None:
    """uninstall a root certificate from the supported trust stores"""
    cert = _one_certificate(crt_file)
    stores = truststores.select(root_dir=root_dir, java=java, firefox=firefox,
                                no_system=no_system, all_=all_, java_keystore=java_keystore,
                                installing=False)
    removed = [store for store in stores if store.remove(cert)]
    if not removed:
        raise StepError(f"certificate {crt_file} is not installed in "
                        + ", ".join(store.label for store in stores))
    for store in removed:
        ui.info(f"removed from {store.label}")
    click.echo(f"Certificate {crt_file} has been removed.")
    click.echo(short_text(cert))


COMMANDS = [create, sign, verify, lint, bundle, format_, key, p12, install, uninstall]

__all__ = ["COMMANDS", "lint_certificate", "load_roots", "verify_chain"]
