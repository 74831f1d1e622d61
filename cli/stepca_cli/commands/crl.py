"""``step crl inspect``: print and check a certificate revocation list."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.x509util import load_certificates, load_crl
from stepca_cli.errors import StepError

MAX_CRL_BYTES = 16 * 1024 * 1024


@click.group()
def crl() -> None:
    """initialize, create, and manage certificate revocation lists"""


def _load(source: str, roots: str | None, insecure: bool) -> x509.CertificateRevocationList:
    if urlparse(source).scheme in ("http", "https"):
        data = _download(source, roots, insecure)
    elif source == "-":
        data = sys.stdin.buffer.read(MAX_CRL_BYTES + 1)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise StepError(f"error reading {source}: {exc.strerror}") from None
    if len(data) > MAX_CRL_BYTES:
        raise StepError(f"{source} is larger than 16 MiB")
    try:
        return load_crl(data)
    except ValueError:
        raise StepError(f"error parsing {source}: it is not a PEM or DER CRL") from None


def _download(url: str, roots: str | None, insecure: bool) -> bytes:
    from stepca_cli import httpclient

    context = httpclient.tls_context(cafile=roots, insecure=insecure)
    try:
        response = httpclient.request("GET", url, limit=MAX_CRL_BYTES, context=context)
    except httpclient.TransportError as exc:
        raise StepError(f"error downloading {url}: {exc.reason}") from None
    if response.status != 200:
        raise StepError(f"error downloading {url}: {response.status} {response.reason}")
    return response.body


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        return None


def _summary(crl_obj: x509.CertificateRevocationList, valid: bool | None) -> dict[str, Any]:
    try:
        number = crl_obj.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return {
        "version": 2, "signature_algorithm": crl_obj.signature_algorithm_oid._name,
        "issuer": crl_obj.issuer.rfc4514_string(), "crl_number": number,
        "this_update": crl_obj.last_update_utc.isoformat().replace("+00:00", "Z"),
        "next_update": (crl_obj.next_update_utc.isoformat().replace("+00:00", "Z")
                        if crl_obj.next_update_utc else None),
        "revoked_certificates": [
            {"serial_number": str(e.serial_number),
             "revocation_date": e.revocation_date_utc.isoformat().replace("+00:00", "Z"),
             **({"reason": _reason(e)} if _reason(e) else {})} for e in crl_obj],
        **({"signature_valid": valid} if valid is not None else {}),
    }


@crl.command()
@click.argument("source", metavar="CRL-FILE|URL")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "pem"]), default="text",
              help="The output format (text).")
@click.option("--ca", "ca_file", metavar="FILE",
              help="Check the CRL's signature with this issuer certificate.")
@click.option("--roots", metavar="FILE", help="Roots to verify an https:// server with.")
@click.option("--insecure", is_flag=True, help="Do not verify an https:// server.")
def inspect(source: str, fmt: str, ca_file: str | None, roots: str | None,
            insecure: bool) -> None:
    """print certificate revocation list (CRL) details in human-readable format"""
    crl_obj = _load(source, roots, insecure)
    valid = None
    if ca_file:
        try:
            issuer = load_certificates(Path(ca_file).read_bytes())[0]
        except (OSError, ValueError, IndexError) as exc:
            raise StepError(f"error reading --ca {ca_file}: {exc}") from None
        valid = crl_obj.issuer == issuer.subject and crl_obj.is_signature_valid(
            issuer.public_key())
    if fmt == "pem":
        click.echo(crl_obj.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(_summary(crl_obj, valid), indent=2))
    else:
        info = _summary(crl_obj, valid)
        lines = ["Certificate Revocation List (CRL):", "    Data:",
                 "        Version: 2 (0x1)",
                 f"        Signature algorithm: {info['signature_algorithm']}",
                 f"        Issuer: {info['issuer']}",
                 f"        Last Update: {info['this_update']}",
                 f"        Next Update: {info['next_update']}"]
        if info["crl_number"] is not None:
            lines.append(f"        CRL Number: {info['crl_number']}")
        if valid is not None:
            lines.append(f"        Signature: {'valid' if valid else 'INVALID'}")
        lines.append("    Revoked Certificates:" if info["revoked_certificates"]
                     else "    No Revoked Certificates.")
        for entry in info["revoked_certificates"]:
            lines.append(f"        Serial Number: {entry['serial_number']}")
            lines.append(f"            Revocation Date: {entry['revocation_date']}")
            if "reason" in entry:
                lines.append(f"            Reason: {entry['reason']}")
        click.echo("\n".join(lines))
    if valid is False:
        raise StepError("the CRL's signature does not verify with --ca")
