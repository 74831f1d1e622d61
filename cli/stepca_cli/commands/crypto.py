"""``step crypto``."""

from __future__ import annotations

import json
import sys

import click
from stepca.jose import JOSEFormatError, parse_unverified

from stepca_cli.errors import StepError


@click.group()
def crypto() -> None:
    """useful cryptographic plumbing"""


@crypto.group()
def jwt() -> None:
    """sign and verify data using JSON Web Tokens (JWT)"""


@jwt.command()
@click.option("--insecure", is_flag=True, help="Required: the signature is not verified.")
@click.pass_context
def inspect(ctx: click.Context, insecure: bool) -> None:
    """return the decoded JWT without verification (reads the token on stdin)"""
    if not insecure:
        raise StepError(f"'{ctx.command_path}' requires the '--insecure' flag")
    raw = sys.stdin.read(64 * 1024).strip()
    try:
        token = parse_unverified(raw)
    except JOSEFormatError as exc:
        raise StepError(f"error parsing token: {exc}") from None
    signature = token.raw.rsplit(".", 1)[1]
    click.echo(json.dumps({"header": token.header, "payload": token.claims,
                           "signature": signature}, indent=2))


# The commands live in stepca_cli.crypto_* modules; they are attached here so `crypto` stays the
# one group the CLI imports.
def _register() -> None:
    from stepca_cli import crypto_jose, crypto_kdf, crypto_keys, crypto_misc

    crypto.add_command(crypto_keys.keypair)
    crypto.add_command(crypto_keys.change_pass)
    crypto.add_command(crypto_keys.key)
    crypto.add_command(crypto_jose.jwk)
    crypto.add_command(crypto_jose.jws)
    crypto.add_command(crypto_jose.jwe)
    crypto.add_command(crypto_jose.jose_group)
    jwt.add_command(crypto_jose.jwt_sign)
    jwt.add_command(crypto_jose.jwt_verify)
    crypto.add_command(crypto_misc.nacl)
    crypto.add_command(crypto_misc.hash_group)
    crypto.add_command(crypto_kdf.kdf)
    crypto.add_command(crypto_misc.otp)
    crypto.add_command(crypto_misc.rand)
    crypto.add_command(crypto_misc.base64_cmd)


_register()
