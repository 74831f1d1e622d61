"""``step hmac token``: make a token for an HMAC provisioner from the shared secret."""

from __future__ import annotations

import secrets
import time

import click

from stepca_example_hmac.provisioner import decode_secret, sign_token


@click.group("hmac")
def hmac_group() -> None:
    """tokens for HMAC provisioners (stepca-example-hmac)"""


@hmac_group.command("token")
@click.argument("subject")
@click.option("--provisioner", "issuer", required=True, help="The HMAC provisioner's name.")
@click.option("--secret-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="File holding the provisioner's base64url secret.")
@click.option("--ca-url", required=True, help="The CA's URL, e.g. https://ca.internal:9000.")
@click.option("--san", multiple=True, help="A name for the certificate (repeatable; default: "
              "the subject).")
@click.option("--lifetime", type=click.IntRange(1, 3600), default=300, show_default=True,
              help="Seconds the token stays valid.")
def token(subject: str, issuer: str, secret_file: str, ca_url: str, san: tuple[str, ...],
          lifetime: int) -> None:
    """print a one-time /sign token for SUBJECT"""
    with open(secret_file, encoding="utf-8") as handle:
        try:
            secret = decode_secret(handle.read())
        except ValueError as exc:
            raise click.ClickException(f"{secret_file}: {exc}") from None
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "sans": list(san) or [subject],
              "aud": f"{ca_url.rstrip('/')}/1.0/sign", "iat": now, "nbf": now,
              "exp": now + lifetime, "jti": secrets.token_hex(32)}
    click.echo(sign_token(claims, secret))
