"""``step certificate inspect`` and ``step certificate fingerprint``: read certificates and
CSRs from files, stdin or TLS servers, and print them as step does."""

from __future__ import annotations

import _ssl
import base64
import json
import socket
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.x509util import fingerprint as sha256_fingerprint
from stepca.x509util import load_certificates
from stepca_cli.errors import StepError
from stepca_cli.inspect_format import certificate_json, certificate_text, short_text

_URL_PORTS = {"https": 443, "tls": 443, "tcp": 443, "smtps": 465, "ldaps": 636}
MAX_INPUT_BYTES = 4 * 1024 * 1024

Item = x509.Certificate | x509.CertificateSigningRequest


def read_items(source: str | None, *, roots: str | None = None, servername: str | None = None,
               insecure: bool = False) -> list[Item]:
    """Certificates (or one CSR) from a file, ``-``/stdin, or a TLS server's chain."""
    if source and "://" in source and urlparse(source).scheme.lower() in _URL_PORTS:
        return list(_peer_chain(source, roots=roots, servername=servername, insecure=insecure))
    if source in (None, "-"):
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES)
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise StepError(f"open {source}: no such file or directory") from None
        except OSError as exc:
            raise StepError(f"error reading {source}: {exc.strerror}") from None
    return parse_items(data, source or "-")


def parse_items(data: bytes, name: str) -> list[Item]:
    if b"CERTIFICATE REQUEST" in data:
        try:
            return [x509.load_pem_x509_csr(data)]
        except ValueError as exc:
            raise StepError(f"error parsing {name}: {exc}") from None
    try:
        certs = load_certificates(data)
    except ValueError:
        try:
            return [x509.load_der_x509_csr(data)]
        except ValueError:
            raise StepError(f"error parsing {name}: it is not a PEM or DER certificate or "
                            "certificate request") from None
    if not certs:
        raise StepError(f"error parsing {name}: no certificate found")
    return list(certs)


def _peer_chain(url: str, *, roots: str | None, servername: str | None,
                insecure: bool) -> list[x509.Certificate]:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or _URL_PORTS[parsed.scheme.lower()]
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif roots:
        context.load_verify_locations(cafile=roots)
    try:
        with socket.create_connection((host, port), timeout=30) as sock, \
                context.wrap_socket(sock, server_hostname=servername or host) as tls:
            chain = _unverified_chain(tls)
    except ssl.SSLCertVerificationError as exc:
        raise StepError(f"failed to connect to {url}: {exc.verify_message}; use --roots or "
                        "--insecure") from None
    except OSError as exc:
        raise StepError(f"failed to connect to {url}: {exc}") from None
    return chain


def _unverified_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """Every certificate the server sent. Public as ``get_unverified_chain`` from Python 3.13;
    3.10-3.12 have it on the private ``_sslobj``. Falls back to the leaf alone."""
    getter = getattr(tls, "get_unverified_chain", None) or getattr(
        getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    chain = getter() if getter is not None else None
    if chain:
        der_format = getattr(ssl, "ENCODING_DER", None) or _ssl.ENCODING_DER
        return [x509.load_der_x509_certificate(c if isinstance(c, bytes) else
                                               c.public_bytes(der_format))
                for c in chain]
    der = tls.getpeercert(binary_form=True)
    if not der:
        raise StepError("the server sent no certificate")
    return [x509.load_der_x509_certificate(der)]


def _der(item: Item) -> bytes:
    return item.public_bytes(serialization.Encoding.DER)


def _format_fingerprint(digest_hex: str, fmt: str) -> str:
    raw = bytes.fromhex(digest_hex)
    return {
        "hex": digest_hex,
        "base64": base64.b64encode(raw).decode(),
        "base64-url": base64.urlsafe_b64encode(raw).decode(),
        "base64-raw": base64.b64encode(raw).decode().rstrip("="),
        "base64-url-raw": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }[fmt]


def remote_options(f: Any) -> Any:
    for option in reversed([
        click.option("--bundle", is_flag=True, help="Use every certificate of a bundle."),
        click.option("--roots", metavar="FILE", help="Root certificates to verify a server with."),
        click.option("--servername", metavar="NAME", help="The TLS server name (SNI)."),
        click.option("--insecure", is_flag=True,
                     help="Do not verify the server's certificate (URLs only)."),
    ]):
        f = option(f)
    return f


@click.command()
@click.argument("source", metavar="[CRT-FILE|URL|-]", required=False)
@remote_options
@click.option("--format", "fmt", type=click.Choice(["hex", "base64", "base64-url", "base64-raw",
                                                    "base64-url-raw"]), default="hex",
              help="The fingerprint encoding (hex).")
def fingerprint(source: str | None, bundle: bool, roots: str | None, servername: str | None,
                insecure: bool, fmt: str) -> None:
    """print the fingerprint of a certificate"""
    items = read_items(source, roots=roots, servername=servername, insecure=insecure)
    if not bundle:
        click.echo(_format_fingerprint(sha256_fingerprint(items[0]), fmt))
        return
    for index, item in enumerate(items):
        click.echo(f"{index}: {_format_fingerprint(sha256_fingerprint(item), fmt)}")


@click.command()
@click.argument("source", metavar="[CRT-FILE|URL|-]", required=False)
@remote_options
@click.option("--short", is_flag=True, help="Print a short summary.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "pem"]), default="text",
              help="The output format (text).")
def inspect(source: str | None, bundle: bool, roots: str | None, servername: str | None,
            insecure: bool, short: bool, fmt: str) -> None:
    """print certificate or CSR details in human readable format"""
    if short and fmt != "text":
        raise StepError(f"flag '--short' is incompatible with '--format {fmt}'")
    items = read_items(source, roots=roots, servername=servername, insecure=insecure)
    if not bundle:
        items = items[:1]
    if fmt == "pem":
        for item in items:
            click.echo(item.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
        return
    if fmt == "json":
        documents = [certificate_json(item) for item in items]
        click.echo(json.dumps(documents if bundle else documents[0], indent=2))
        return
    render = short_text if short else certificate_text
    click.echo("\n".join(render(item) for item in items))
