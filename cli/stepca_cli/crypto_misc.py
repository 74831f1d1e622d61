"""``step crypto nacl|hash|otp|rand|base64``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import string
import struct
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click

from stepca_cli import crypto_common as common
from stepca_cli.errors import StepError


# -- nacl --------------------------------------------------------------------------------------------

@click.group()
def nacl() -> None:
    """easy-to-use high-speed tools for encryption and signing (NaCl)"""


@nacl.group()
def box() -> None:
    """authenticated public-key encryption (Curve25519, XSalsa20, Poly1305)"""


@nacl.group()
def secretbox() -> None:
    """authenticated secret-key encryption (XSalsa20, Poly1305)"""


@nacl.group("auth")
def auth() -> None:
    """secret-key message authentication (HMAC-SHA-512-256)"""


@nacl.group("sign")
def nacl_sign() -> None:
    """public-key signatures (Ed25519)"""


def _nonce(value: str) -> bytes:
    # step uses the argument's bytes, zero-padded to 24: callers must never reuse one.
    raw = value.encode()
    if len(raw) > 24:
        raise StepError("nonce cannot be longer than 24 bytes")
    return raw.ljust(24, b"\x00")


def _raw_key(path: str, size: int, what: str) -> bytes:
    data = common.read_file(path)
    if len(data) != size:
        raise StepError(f"invalid {what} {path}: expected {size} bytes, got {len(data)}")
    return data


def _sealed_input(raw: bool) -> bytes:
    data = common.read_stdin_bytes()
    if raw:
        return data
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise StepError("error decoding the input: not standard base64 (use --raw for raw "
                        "bytes)") from None


def _sealed_output(data: bytes, raw: bool) -> None:
    if raw:
        common.write_stdout(data)
    else:
        click.echo(base64.b64encode(data).decode())


def _write_keypair(pub_file: str, priv_file: str, pub: bytes, priv: bytes, force: bool) -> None:
    if os.path.abspath(pub_file) == os.path.abspath(priv_file):
        raise StepError("positional arguments <pub-file> and <priv-file> cannot be equal")
    common.write_file(pub_file, pub, force=force)
    common.write_file(priv_file, priv, force=force)


@box.command("keypair")
@click.argument("pub_file")
@click.argument("priv_file")
@click.option("--force", "-f", is_flag=True, help="Overwrite existing files without asking.")
def box_keypair(pub_file: str, priv_file: str, force: bool) -> None:
    """generate a Curve25519 key pair (raw 32-byte files, 0600)"""
    from nacl.public import PrivateKey

    key = PrivateKey.generate()
    _write_keypair(pub_file, priv_file, bytes(key.public_key), bytes(key), force)


def _box(pub_file: str, priv_file: str) -> Any:
    from nacl.public import Box, PrivateKey, PublicKey

    return Box(PrivateKey(_raw_key(priv_file, 32, "private key")),
               PublicKey(_raw_key(pub_file, 32, "public key")))


@box.command("seal")
@click.argument("nonce")
@click.argument("recipient_pub_file")
@click.argument("sender_priv_file")
@click.option("--raw", is_flag=True, help="Print raw bytes instead of base64.")
def box_seal(nonce: str, recipient_pub_file: str, sender_priv_file: str, raw: bool) -> None:
    """encrypt and authenticate stdin for a recipient"""
    sealed = _box(recipient_pub_file, sender_priv_file).encrypt(common.read_stdin_bytes(),
                                                                _nonce(nonce))
    _sealed_output(sealed.ciphertext, raw)


@box.command("open")
@click.argument("nonce")
@click.argument("sender_pub_file")
@click.argument("recipient_priv_file")
@click.option("--raw", is_flag=True, help="The input is raw bytes, not base64.")
def box_open(nonce: str, sender_pub_file: str, recipient_priv_file: str, raw: bool) -> None:
    """verify and decrypt a box read on stdin"""
    from nacl.exceptions import CryptoError

    try:
        opened = _box(sender_pub_file, recipient_priv_file).decrypt(_sealed_input(raw),
                                                                    _nonce(nonce))
    except CryptoError:
        raise StepError("error authenticating input") from None
    common.write_stdout(opened)


@secretbox.command("seal")
@click.argument("nonce")
@click.argument("key_file")
@click.option("--raw", is_flag=True, help="Print raw bytes instead of base64.")
def secretbox_seal(nonce: str, key_file: str, raw: bool) -> None:
    """encrypt and authenticate stdin with a 32-byte secret key file"""
    from nacl.secret import SecretBox

    sealed = SecretBox(_raw_key(key_file, 32, "key")).encrypt(common.read_stdin_bytes(),
                                                              _nonce(nonce))
    _sealed_output(sealed.ciphertext, raw)


@secretbox.command("open")
@click.argument("nonce")
@click.argument("key_file")
@click.option("--raw", is_flag=True, help="The input is raw bytes, not base64.")
def secretbox_open(nonce: str, key_file: str, raw: bool) -> None:
    """verify and decrypt a secret box read on stdin"""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        opened = SecretBox(_raw_key(key_file, 32, "key")).decrypt(_sealed_input(raw),
                                                                  _nonce(nonce))
    except CryptoError:
        raise StepError("error authenticating input") from None
    common.write_stdout(opened)


@nacl_sign.command("keypair")
@click.argument("pub_file")
@click.argument("priv_file")
@click.option("--force", "-f", is_flag=True, help="Overwrite existing files without asking.")
def sign_keypair(pub_file: str, priv_file: str, force: bool) -> None:
    """generate an Ed25519 key pair (32-byte public, 64-byte private, 0600)"""
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    pub = bytes(key.verify_key)
    # NaCl's (and Go's) 64-byte private key is the seed followed by the public key.
    _write_keypair(pub_file, priv_file, pub, bytes(key) + pub, force)


@nacl_sign.command("sign")
@click.argument("priv_file")
@click.option("--raw", is_flag=True, help="Print raw bytes instead of base64.")
def sign_sign(priv_file: str, raw: bool) -> None:
    """sign stdin; prints the signed message (signature followed by message)"""
    from nacl.signing import SigningKey

    priv = _raw_key(priv_file, 64, "private key")
    key = SigningKey(priv[:32])
    if bytes(key.verify_key) != priv[32:]:
        raise StepError(f"invalid private key {priv_file}: its public half does not match")
    _sealed_output(bytes(key.sign(common.read_stdin_bytes())), raw)


@nacl_sign.command("open")
@click.argument("pub_file")
@click.option("--raw", is_flag=True, help="The input is raw bytes, not base64.")
def sign_open(pub_file: str, raw: bool) -> None:
    """verify a signed message read on stdin and print the message"""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        opened = VerifyKey(_raw_key(pub_file, 32, "public key")).verify(_sealed_input(raw))
    except BadSignatureError:
        raise StepError("error verifying input: invalid signature") from None
    common.write_stdout(opened)


def _auth_tag(key_file: str) -> bytes:
    # NaCl's crypto_auth is HMAC-SHA-512 truncated to its first 32 bytes.
    key = _raw_key(key_file, 32, "key")
    return hmac.new(key, common.read_stdin_bytes(), hashlib.sha512).digest()[:32]


@auth.command("digest")
@click.argument("key_file")
def auth_digest(key_file: str) -> None:
    """print the hex authentication tag of stdin under a 32-byte secret key"""
    click.echo(_auth_tag(key_file).hex())


@auth.command("verify")
@click.argument("key_file")
@click.argument("tag")
def auth_verify(key_file: str, tag: str) -> None:
    """check a hex authentication tag of stdin; prints ok or fails"""
    try:
        expected = bytes.fromhex(tag.strip())
    except ValueError:
        raise StepError(f"invalid tag '{tag}': not hexadecimal") from None
    if not hmac.compare_digest(_auth_tag(key_file), expected):
        raise StepError("fail")
    click.echo("ok")


# -- hash --------------------------------------------------------------------------------------------

HASH_ALGS = {"sha1": "sha1", "sha": "sha1", "sha224": "sha224", "sha256": "sha256",
             "sha384": "sha384", "sha512": "sha512", "sha512-224": "sha512_224",
             "sha512-256": "sha512_256", "md5": "md5"}


@click.group("hash")
def hash_group() -> None:
    """generate and check hashes of files and directories"""


def _hasher(alg: str, insecure: bool) -> Any:
    name = HASH_ALGS.get(alg.lower())
    if not name:
        raise StepError(f"invalid value '{alg}' for flag '--alg'; options are "
                        f"{', '.join(HASH_ALGS)}")
    if name in ("md5", "sha1") and alg.lower() == "md5" and not insecure:
        raise StepError("'--alg md5' requires the '--insecure' flag")
    return lambda: hashlib.new(name)


def _digest_path(path: Path, new: Any) -> bytes:
    """A file's digest, or for a directory a digest over its sorted entries (mode, name and
    the entry's own digest), so renames, mode changes and content changes all show."""
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        h = new()
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            cst = child.lstat()
            h.update(struct.pack("<I", cst.st_mode & 0xFFFFFFFF))
            h.update(child.name.encode("utf-8", "surrogateescape") + b"\x00")
            if stat.S_ISLNK(cst.st_mode):
                h.update(os.readlink(child).encode("utf-8", "surrogateescape"))
            else:
                h.update(_digest_path(child, new))
        return bytes(h.digest())
    h = new()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return bytes(h.digest())


def _digest(path: str, new: Any) -> bytes:
    if path == "-":
        h = new()
        h.update(sys.stdin.buffer.read())
        return bytes(h.digest())
    try:
        return _digest_path(Path(path), new)
    except OSError as exc:
        raise StepError(f"error reading {path}: {exc.strerror}") from None


@hash_group.command("digest")
@click.argument("paths", nargs=-1)
@click.option("--alg", default="sha256", show_default=True, help="The hash algorithm.")
@click.option("--insecure", is_flag=True, help="Allow md5.")
def hash_digest(paths: tuple[str, ...], alg: str, insecure: bool) -> None:
    """print the digests of files and directories (stdin with no path or '-')"""
    new = _hasher(alg, insecure)
    for path in paths or ("-",):
        click.echo(f"{_digest(path, new).hex()}  {path}")


@hash_group.command("compare")
@click.argument("expected")
@click.argument("paths", nargs=-1)
@click.option("--alg", default="sha256", show_default=True, help="The hash algorithm.")
@click.option("--insecure", is_flag=True, help="Allow md5.")
def hash_compare(expected: str, paths: tuple[str, ...], alg: str, insecure: bool) -> None:
    """compare a hex digest with the digest of a file or directory; prints ok or fails"""
    new = _hasher(alg, insecure)
    try:
        want = bytes.fromhex(expected.strip())
    except ValueError:
        raise StepError(f"invalid hash '{expected}': not hexadecimal") from None
    for path in paths or ("-",):
        if not hmac.compare_digest(_digest(path, new), want):
            raise StepError("fail")
    click.echo("ok")


# -- otp (TOTP, RFC 6238 over HOTP, RFC 4226) ---------------------------------------------------------

OTP_ALGS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def hotp(secret: bytes, counter: int, *, digits: int = 6, alg: str = "SHA1") -> str:
    mac = hmac.new(secret, struct.pack(">Q", counter), OTP_ALGS[alg]).digest()
    offset = mac[-1] & 0x0F  # RFC 4226 dynamic truncation
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10 ** digits).zfill(digits)


def totp(secret: bytes, at: float, *, period: int = 30, digits: int = 6,
         alg: str = "SHA1") -> str:
    return hotp(secret, int(at // period), digits=digits, alg=alg)


def _otp_alg(alg: str) -> str:
    alg = alg.upper()
    if alg not in OTP_ALGS:
        raise StepError(f"invalid value '{alg}' for flag '--alg'; options are SHA1, SHA256, "
                        "SHA512")
    return alg


def _b32decode(text: str) -> bytes:
    cleaned = "".join(text.split()).upper().rstrip("=")
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        raise StepError("invalid secret: not base32") from None


@click.group()
def otp() -> None:
    """generate and verify one-time passwords (TOTP)"""


@otp.command("generate")
@click.option("--issuer", help="The issuer (shown by authenticator apps; needed for --url).")
@click.option("--account", help="The account name (needed for --url).")
@click.option("--period", default=30, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds a code is valid.")
@click.option("--length", "--digits", "length", default=6, show_default=True,
              type=click.IntRange(6, 10), help="Digits in a code.")
@click.option("--secret-size", default=20, show_default=True, type=click.IntRange(10, 128),
              help="Bytes of random secret.")
@click.option("--alg", default="SHA1", show_default=True, help="SHA1, SHA256 or SHA512.")
@click.option("--url", is_flag=True, help="Print an otpauth:// URL instead of the secret.")
@click.option("--qr", "qr_file", metavar="FILE",
              help="Also write the otpauth:// URL as a QR code PNG to FILE (mode 0600).")
@click.option("--force", "-f", is_flag=True, help="Overwrite the --qr file without asking.")
def otp_generate(issuer: str | None, account: str | None, period: int, length: int,
                 secret_size: int, alg: str, url: bool, qr_file: str | None, force: bool) -> None:
    """generate a TOTP secret (base32) or otpauth:// URL"""
    alg = _otp_alg(alg)
    secret = base64.b32encode(os.urandom(secret_size)).decode().rstrip("=")
    if (url or qr_file) and (not issuer or not account):
        flag = "--url" if url else "--qr"
        raise StepError(f"flag '{flag}' requires the '--issuer' and '--account' flags")
    link = ""
    if issuer and account:
        query = urlencode({"algorithm": alg, "digits": length, "issuer": issuer,
                           "period": period, "secret": secret})
        link = f"otpauth://totp/{quote(issuer)}:{quote(account)}?{query}"
    if qr_file:
        common.write_file(qr_file, _qr_png(link), force=force)  # it holds the secret
    click.echo(link if url else secret)


def _qr_png(text: str) -> bytes:
    import io

    import qrcode
    from qrcode.image.pure import PyPNGImage

    buffer = io.BytesIO()
    qrcode.make(text, image_factory=PyPNGImage).save(buffer)
    return buffer.getvalue()


@otp.command("verify")
@click.option("--secret", "secret_file", required=True, help="File with the base32 secret "
              "(or an otpauth:// URL).")
@click.option("--period", default=30, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds a code is valid.")
@click.option("--skew", default=0, show_default=True, type=click.IntRange(0, 10),
              help="Periods before and after now that are also accepted.")
@click.option("--length", "--digits", "length", default=6, show_default=True,
              type=click.IntRange(6, 10), help="Digits in a code.")
@click.option("--alg", default="SHA1", show_default=True, help="SHA1, SHA256 or SHA512.")
@click.option("--time", "at", help="Verify at this RFC 3339 time instead of now.")
def otp_verify(secret_file: str, period: int, skew: int, length: int, alg: str,
               at: str | None) -> None:
    """verify a TOTP passcode (asked on the terminal, or read from stdin when piped)"""
    alg = _otp_alg(alg)
    text = common.read_file(secret_file).decode("utf-8", "replace").strip()
    if text.startswith("otpauth://"):
        from urllib.parse import parse_qs, urlparse

        text = parse_qs(urlparse(text).query).get("secret", [""])[0]
    secret = _b32decode(text)
    when = time.time()
    if at:
        try:
            when = datetime.fromisoformat(at).timestamp()
        except ValueError:
            raise StepError(f"invalid value '{at}' for flag '--time'; expected RFC 3339") from None
    if sys.stdin.isatty():
        code = str(click.prompt("Enter Passcode", err=True, hide_input=False)).strip()
    else:
        # A one-time code may be piped: it is useless once used or once its period passes.
        code = sys.stdin.readline().strip()
    if not code:
        raise StepError("error reading the passcode: nothing was read")
    for step_ in range(-skew, skew + 1):
        expected = totp(secret, when + step_ * period, period=period, digits=length, alg=alg)
        if hmac.compare_digest(expected, code):
            click.echo("ok")
            return
    raise StepError("fail")


# -- rand --------------------------------------------------------------------------------------------

RAND_ALPHABETS = {
    "alphanumeric": string.ascii_letters + string.digits,
    "alpha": string.ascii_letters,
    "ascii": "".join(chr(c) for c in range(33, 127)),
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "numeric": string.digits,
}


@click.command()
@click.argument("length", required=False, type=click.IntRange(1, 1 << 20), default=32)
@click.option("--format", "fmt", default="hex", show_default=True,
              type=click.Choice(["hex", "base64", "base64-url", "raw", *RAND_ALPHABETS]),
              help="hex and base64 encode LENGTH random bytes; the others print LENGTH "
              "characters.")
def rand(length: int, fmt: str) -> None:
    """create cryptographically secure random strings"""
    if fmt in RAND_ALPHABETS:
        alphabet = RAND_ALPHABETS[fmt]
        click.echo("".join(secrets.choice(alphabet) for _ in range(length)))
        return
    data = os.urandom(length)
    if fmt == "raw":
        common.write_stdout(data)
    elif fmt == "hex":
        click.echo(data.hex())
    elif fmt == "base64":
        click.echo(base64.standard_b64encode(data).decode())
    else:
        click.echo(base64.urlsafe_b64encode(data).decode())


# -- base64 ------------------------------------------------------------------------------------------

@click.command("base64")
@click.option("--decode", "-d", is_flag=True, help="Decode instead of encode.")
@click.option("--url", "-u", is_flag=True, help="Use the URL-safe alphabet.")
@click.option("--raw", "-r", is_flag=True, help="No padding when encoding.")
def base64_cmd(decode: bool, url: bool, raw: bool) -> None:
    """encode or decode stdin as base64"""
    data = common.read_stdin_bytes()
    if decode:
        text = b"".join(data.split()).rstrip(b"=")
        # Accept either alphabet with or without padding, as step's decoder is lenient too.
        if url or b"-" in text or b"_" in text:
            decoder = base64.urlsafe_b64decode
        else:
            decoder = base64.standard_b64decode
        try:
            common.write_stdout(decoder(text + b"=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            raise StepError("error decoding input: not base64") from None
        return
    encoded = (base64.urlsafe_b64encode(data) if url else base64.standard_b64encode(data))
    click.echo((encoded.rstrip(b"=") if raw else encoded).decode())
