"""``step crypto kdf hash|compare``: password hashes as PHC strings (scrypt, bcrypt, Argon2)."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re

import click

from stepca_cli import ui
from stepca_cli.errors import StepError

ALGORITHMS = ("scrypt", "bcrypt", "argon2i", "argon2id")
# step's parameters: scrypt N=2^15 r=8 p=1; bcrypt cost 10; Argon2 as golang.org/x/crypto
# recommends (argon2i t=3 m=32 MiB, argon2id t=1 m=64 MiB), 4 lanes, 16-byte salts, 32-byte keys.
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
BCRYPT_COST = 10
ARGON2 = {"argon2i": (3, 32 * 1024), "argon2id": (1, 64 * 1024)}
ARGON2_LANES = 4
SALT_BYTES, KEY_BYTES = 16, 32
# A hash to compare with says how much work to do: refuse absurd amounts.
MAX_SCRYPT_LOG_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 20, 32, 16
MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_TIME, MAX_ARGON2_LANES = 1024 * 1024, 64, 64

_SCRYPT_PHC = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)"
                         r"\$([A-Za-z0-9+/]+)")
_ARGON2_PHC = re.compile(r"\$(argon2id?)\$v=19\$m=(\d{1,8}),t=(\d{1,4}),p=(\d{1,3})\$")


@click.group()
def kdf() -> None:
    """key derivation functions for password hashing and verification"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise StepError("invalid hash: its salt or key is not base64") from None


def _password(value: str | None, password_file: str | None, command: str) -> bytes:
    if value is not None and password_file:
        raise StepError("the input and flag '--password-file' are mutually exclusive")
    if value is not None:
        return value.encode()
    from_file = ui.read_password_file(password_file, "password-file")
    if from_file is not None:
        return from_file
    return ui.ask_password("Please enter the password to hash", flag="password-file",
                           command=command)


def hash_password(password: bytes, alg: str) -> str:
    if alg == "scrypt":
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        salt = os.urandom(SALT_BYTES)
        key = Scrypt(salt=salt, length=KEY_BYTES, n=1 << SCRYPT_LOG_N, r=SCRYPT_R,
                     p=SCRYPT_P).derive(password)
        return f"$scrypt$ln={SCRYPT_LOG_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"
    if alg == "bcrypt":
        import bcrypt

        try:
            return bcrypt.hashpw(password, bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")).decode()
        except ValueError:
            raise StepError("bcrypt cannot hash passwords longer than 72 bytes") from None
    from argon2.low_level import Type, hash_secret

    time_cost, memory = ARGON2[alg]
    return hash_secret(password, os.urandom(SALT_BYTES), time_cost=time_cost,
                       memory_cost=memory, parallelism=ARGON2_LANES, hash_len=KEY_BYTES,
                       type=Type.ID if alg == "argon2id" else Type.I).decode()


def matches(password: bytes, phc: str) -> bool:
    """Whether ``password`` hashes to ``phc``; ``StepError`` if ``phc`` is not one we read."""
    if phc.startswith("$scrypt$"):
        return _scrypt_matches(password, phc)
    if phc.startswith(("$2a$", "$2b$", "$2y$")):
        import bcrypt

        try:
            return bcrypt.checkpw(password, phc.encode())
        except ValueError:
            raise StepError("invalid bcrypt hash") from None
    if phc.startswith("$argon2"):
        return _argon2_matches(password, phc)
    raise StepError("invalid hash: not a scrypt, bcrypt, argon2i or argon2id PHC string")


def _scrypt_matches(password: bytes, phc: str) -> bool:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    found = _SCRYPT_PHC.fullmatch(phc)
    if not found:
        raise StepError("invalid scrypt hash")
    log_n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    if not (1 <= log_n <= MAX_SCRYPT_LOG_N and 1 <= r <= MAX_SCRYPT_R and 1 <= p <= MAX_SCRYPT_P):
        raise StepError("invalid scrypt hash: its parameters are out of range")
    salt, key = _unb64(found.group(4)), _unb64(found.group(5))
    derived = Scrypt(salt=salt, length=len(key), n=1 << log_n, r=r, p=p).derive(password)
    return hmac.compare_digest(derived, key)


def _argon2_matches(password: bytes, phc: str) -> bool:
    from argon2.exceptions import VerificationError, VerifyMismatchError
    from argon2.low_level import Type, verify_secret

    found = _ARGON2_PHC.match(phc)
    if not found:
        raise StepError("invalid argon2 hash")
    memory, time_cost, lanes = (int(found.group(i)) for i in (2, 3, 4))
    if memory > MAX_ARGON2_MEMORY_KIB or time_cost > MAX_ARGON2_TIME or lanes > MAX_ARGON2_LANES:
        raise StepError("invalid argon2 hash: its parameters are out of range")
    kind = Type.ID if found.group(1) == "argon2id" else Type.I
    try:
        return verify_secret(phc.encode(), password, kind)
    except VerifyMismatchError:
        return False
    except VerificationError:
        raise StepError("invalid argon2 hash") from None


@kdf.command("hash")
@click.argument("input_", metavar="INPUT", required=False)
@click.option("--alg", default="scrypt", show_default=True, type=click.Choice(ALGORITHMS),
              help="The key derivation function.")
@click.option("--password-file", help="Read the password to hash from this file.")
@click.pass_context
def kdf_hash(ctx: click.Context, input_: str | None, alg: str, password_file: str | None) -> None:
    """hash a password (INPUT, --password-file or a prompt) and print the PHC string"""
    click.echo(hash_password(_password(input_, password_file, ctx.command_path), alg))


@kdf.command("compare")
@click.argument("phc_hash", metavar="HASH")
@click.argument("input_", metavar="INPUT", required=False)
@click.option("--password-file", help="Read the password to compare from this file.")
@click.pass_context
def kdf_compare(ctx: click.Context, phc_hash: str, input_: str | None,
                password_file: str | None) -> None:
    """compare a password with a PHC hash; prints ok or fails"""
    if not matches(_password(input_, password_file, ctx.command_path), phc_hash.strip()):
        raise StepError("fail")
    click.echo("ok")
