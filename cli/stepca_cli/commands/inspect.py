"""``step certificate inspect`` and ``step certificate fingerprint``: read certificates and CSRs
from a file, stdin or a TLS server, and print them as step does."""

from __future__ import annotations

import base64
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from cryptography import x509

from stepca_cli.context import option_group
from stepca_cli.errors import StepError
from stepca_cli.inspect_format import (
    FormatError,
    certificate_json,
    certificate_text,
    short_text,
    to_json,
)

# step's URL prefixes (matched case-insensitively) and their default ports
URL_PORTS = {"https://": 443, "tls://": 443, "tcp://": 443, "smtps://": 465, "ldaps://": 636}
MAX_INPUT_BYTES = 4 * 1024 * 1024  # far above any real bundle; stops a stray pipe eating memory
CONNECT_TIMEOUT = 30.0
_UTF8_BOM = b"\xef\xbb\xbf"

if TYPE_CHECKING:
    import ssl

Item = x509.Certificate | x509.CertificateSigningRequest


# -- input -----------------------------------------------------------------------------------------

def read_items(source: str | None, *, roots: str | None = None, servername: str | None = None,
               insecure: bool = False) -> list[Item]:
    """Certificates (or one CSR) from a file, ``-``/stdin, or the chain a TLS server sends."""
    source = source or "-"
    address = url_address(source)
    if address is not None:
        return list(peer_certificates(address, servername=servername, roots=roots,
                                      insecure=insecure))
    return parse_items(read_source(source), source)


def read_source(source: str) -> bytes:
    """The bytes of a file or of stdin (``-``), refusing anything over the size limit."""
    if source == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        except IsADirectoryError:
            raise StepError(f"error reading file {source}: read {source} failed: "
                            "is a directory") from None
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise StepError(f"error reading file {source}: open {source} failed: "
                            f"{reason}") from None
        data = data.removeprefix(_UTF8_BOM)
    if len(data) > MAX_INPUT_BYTES:
        raise StepError(f"error reading file {source}: the input is larger than "
                        f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB")
    return data


def parse_items(data: bytes, name: str) -> list[Item]:
    """Every CERTIFICATE block (or the one DER certificate); failing that, a CSR."""
    try:
        certificates = _certificate_bundle(data)
    except ValueError:
        certificates = []
    if certificates:
        return list(certificates)
    try:
        return [_certificate_request(data)]
    except ValueError:
        raise StepError(f"file {name} does not contain any valid CERTIFICATE or CERTIFICATE "
                        "REQUEST blocks") from None


def _certificate_bundle(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)  # other PEM blocks are skipped
    return [x509.load_der_x509_certificate(data)]


def _certificate_request(data: bytes) -> x509.CertificateSigningRequest:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_csr(data)
    return x509.load_der_x509_csr(data)


# -- TLS servers -----------------------------------------------------------------------------------

def url_address(source: str) -> tuple[str, int] | None:
    """(host, port) when ``source`` is one of step's URL forms; the path is ignored."""
    lowered = source.lower()
    prefix = next((p for p in URL_PORTS if lowered.startswith(p)), None)
    if prefix is None:
        return None
    try:
        parts = urlsplit(source)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise StepError(f"error parsing URL '{source}': {exc}") from None
    if not host or any(c.isspace() for c in source):
        raise StepError(f"error parsing URL '{source}': invalid host")
    return host, port or URL_PORTS[prefix]


def load_roots(roots: str) -> str:
    """PEM text of every certificate in ``--roots``: a file, a comma-separated list of files
    or a directory, as step reads it."""
    path = Path(roots)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [
        Path(name.strip()) for name in roots.split(",")]
    from cryptography.hazmat.primitives import serialization

    pems: list[str] = []
    for file in files:
        try:
            data = read_source(str(file))
        except StepError as exc:
            raise StepError(f"failure to load root certificate pool from input path "
                            f"'{roots}': {exc}") from None
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:  # no (valid) certificate in this file
            continue
        pems += [c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates]
    if not pems:
        raise StepError(f"failure to load root certificate pool from input path '{roots}': "
                        "error loading cert pool: no certificates found")
    return "".join(pems)


def _tls_context(roots: str | None, insecure: bool) -> ssl.SSLContext:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif roots:
        context.load_verify_locations(cadata=load_roots(roots))  # only these, as step does
    else:
        context.load_default_certs()
    return context


def _verify_reason(exc: ssl.SSLCertVerificationError, name: str) -> str:
    """Go's wording for the usual verification failures."""
    code = getattr(exc, "verify_code", None)
    if code in (18, 19, 20, 21):
        return "x509: certificate signed by unknown authority"
    if code == 10:
        return "x509: certificate has expired or is not yet valid"
    if code in (62, 63, 64):  # host name, email or IP address mismatch
        return f"x509: certificate is not valid for {name}"
    return getattr(exc, "verify_message", None) or str(exc)


def peer_certificates(address: tuple[str, int], *, servername: str | None, roots: str | None,
                      insecure: bool) -> list[x509.Certificate]:
    """The certificates a TLS server sends (leaf first), verified unless ``insecure``."""
    import socket
    import ssl

    host, port = address
    context = _tls_context(roots, insecure)
    name = servername or host
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock, \
                context.wrap_socket(sock, server_hostname=name) as tls:
            chain = _unverified_chain(tls)
    except ssl.SSLCertVerificationError as exc:
        raise StepError("failed to connect: tls: failed to verify certificate: "
                        f"{_verify_reason(exc, name)}") from None
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StepError(f"failed to connect: {reason}") from None
    if not chain:
        raise StepError("failed to connect: the server sent no certificate")
    return chain


def _unverified_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """Every certificate the server sent. ``SSLSocket.get_unverified_chain`` is public from
    Python 3.13; 3.10-3.12 have it on the private ``_sslobj`` (certificate objects rather than
    DER). Without either, only the leaf is available."""
    import _ssl

    getter = getattr(tls, "get_unverified_chain", None) or getattr(
        getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    chain = getter() if getter is not None else None
    if chain:
        return [x509.load_der_x509_certificate(
            c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER)) for c in chain]
    leaf = tls.getpeercert(binary_form=True)
    return [x509.load_der_x509_certificate(leaf)] if leaf else []


# -- commands --------------------------------------------------------------------------------------

remote_options = option_group(
    click.option("--bundle", is_flag=True,
                 help="Use every certificate of the bundle or of the server's chain, not "
                      "only the first."),
    click.option("--roots", metavar="ROOTS",
                 help="Root certificates to verify a server with: a file, a comma-separated "
                      "list of files, or a directory (default: the system's)."),
    click.option("--servername", metavar="NAME",
                 help="The server name to send (SNI) and to verify (URLs only)."),
    click.option("--insecure", is_flag=True,
                 help="Do not verify the server's certificate (URLs only)."),
)


def _formatting(action: Any) -> Any:
    """Run a formatter, turning parts of a certificate it cannot decode into a one-line error.
    cryptography's warnings about odd but readable fields (a 3-letter country) are not for the
    user: step prints such certificates silently."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return action()
    except (FormatError, ValueError) as exc:
        raise StepError(str(exc) or "error decoding the certificate") from None


_FINGERPRINT_FORMATS = {"hex": "hex", "base64": "base64", "base64url": "base64-url",
                        "base64-url": "base64-url", "base64raw": "base64-raw",
                        "base64-raw": "base64-raw", "base64urlraw": "base64-url-raw",
                        "base64url-raw": "base64-url-raw", "base64-url-raw": "base64-url-raw"}


def encode_fingerprint(digest: bytes, fmt: str) -> str:
    return {
        "hex": digest.hex(),
        "base64": base64.b64encode(digest).decode(),
        "base64-url": base64.urlsafe_b64encode(digest).decode(),
        "base64-raw": base64.b64encode(digest).decode().rstrip("="),
        "base64-url-raw": base64.urlsafe_b64encode(digest).decode().rstrip("="),
    }[fmt]


@click.command()
@click.argument("source", metavar="[CRT-FILE|URL|-]", required=False)
@remote_options
@click.option("--format", "fmt", default="hex", metavar="FORMAT",
              help="The fingerprint encoding: hex (default), base64, base64-url, base64-raw or "
                   "base64-url-raw.")
@click.option("--sha1", "use_sha1", is_flag=True,
              help="Use SHA-1 instead of SHA-256 (requires --insecure).")
def fingerprint(source: str | None, bundle: bool, roots: str | None, servername: str | None,
                insecure: bool, fmt: str, use_sha1: bool) -> None:
    """print the fingerprint of a certificate"""
    if use_sha1 and not insecure:
        raise StepError("flag '--sha1' requires the '--insecure' flag")
    encoding = _FINGERPRINT_FORMATS.get(fmt.strip().lower())
    if encoding is None:
        raise StepError(f"error parsing fingerprint format: '{fmt}' is not a valid fingerprint "
                        "format")
    items = read_items(source, roots=roots, servername=servername, insecure=insecure)
    if not bundle:
        items = items[:1]
    import hashlib

    from cryptography.hazmat.primitives import serialization

    for index, item in enumerate(items):
        der = item.public_bytes(serialization.Encoding.DER)
        digest = hashlib.sha1(der).digest() if use_sha1 else hashlib.sha256(der).digest()
        text = encode_fingerprint(digest, encoding)
        click.echo(f"{index}: {text}" if bundle else text)


@click.command()
@click.argument("source", metavar="[CRT-FILE|URL|-]", required=False)
@remote_options
@click.option("--short", is_flag=True, help="Print a short summary (text format only).")
@click.option("--format", "fmt", default="text", metavar="FORMAT",
              help="The output format: text (default), json or pem.")
def inspect(source: str | None, bundle: bool, roots: str | None, servername: str | None,
            insecure: bool, short: bool, fmt: str) -> None:
    """print certificate or CSR details in human readable format"""
    if fmt not in ("text", "json", "pem"):
        raise StepError(f"invalid value '{fmt}' for flag '--format'; options are text, json, "
                        "pem")
    if short and fmt != "text":
        raise StepError(f"flag '--short' is incompatible with '--format {fmt}'")
    items = read_items(source, roots=roots, servername=servername, insecure=insecure)
    if not bundle:
        items = items[:1]
    if fmt == "pem":
        from cryptography.hazmat.primitives import serialization

        click.echo("".join(item.public_bytes(serialization.Encoding.PEM).decode()
                           for item in items), nl=False)
    elif fmt == "json":
        documents = _formatting(lambda: [certificate_json(item) for item in items])
        # step prints a lone certificate as an object even with --bundle
        click.echo(to_json(documents[0] if len(documents) == 1 else documents))
    else:
        render = short_text if short else certificate_text
        click.echo("".join(_formatting(lambda item=item: render(item)) + "\n"
                           for item in items), nl=False)
