"""Shared plumbing for ``step crypto``: passwords, key files (PEM, JWK, encrypted JWK), writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from stepca import x509util

from stepca_cli import ui
from stepca_cli.errors import StepError

MAX_INPUT = 64 * 1024 * 1024  # stdin/file inputs are bounded so a stray pipe cannot eat memory


def general_names(values: list[str]) -> list[Any]:
    """The subject alternative names ``values`` stand for; a ``StepError`` for one that no
    certificate can carry (for a non-ASCII DNS name, the message names its A-label)."""
    sans = x509util.split_sans(values)
    for name in sans.dns:
        if not name.isascii():
            from stepca.names import check_dns_name

            try:
                check_dns_name(name)
            except ValueError as exc:
                raise StepError(str(exc)) from None
    try:
        return sans.general_names()
    except ValueError as exc:
        raise StepError(f"invalid subject alternative name: {exc}") from None


def command_path() -> str:
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx else "step crypto"


def read_stdin_bytes() -> bytes:
    return sys.stdin.buffer.read(MAX_INPUT)


def write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def read_input(path: str | None) -> bytes:
    """A positional file's bytes, or stdin for ``-`` / no file."""
    if path in (None, "-"):
        return read_stdin_bytes()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StepError(f"error reading {path}: {exc.strerror}") from None


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StepError(f"error reading {path}: {exc.strerror}") from None


def insecure_password_flags(no_password: bool, insecure: bool) -> None:
    if no_password and not insecure:
        raise StepError("flag '--no-password' requires the '--insecure' flag")


def decrypt_password(password_file: str | None, path: str, *,
                     flag: str = "password-file") -> bytes:
    """The password to decrypt ``path``: from the file flag, else asked on the terminal."""
    password = ui.read_password_file(password_file, flag)
    if password is not None:
        return password
    return ui.ask_password(f"Please enter the password to decrypt {path}", flag=flag,
                           command=command_path())


def encrypt_password(password_file: str | None, what: str, *, no_password: bool,
                     insecure: bool, flag: str = "password-file") -> bytes | None:
    """The password to encrypt ``what``; ``None`` (plaintext) only with --no-password
    --insecure."""
    insecure_password_flags(no_password, insecure)
    if no_password:
        if password_file:
            raise StepError(f"flag '--{flag}' and flag '--no-password' are mutually exclusive")
        return None
    password = ui.read_password_file(password_file, flag)
    if password is None:
        password = ui.ask_password(f"Please enter the password to encrypt {what}", flag=flag,
                                   command=command_path(), confirm=True)
    if not password:
        raise StepError("the password cannot be empty: use '--no-password --insecure' to store "
                        "the key unencrypted")
    return password


def write_file(path: str, data: bytes, *, force: bool, mode: int = 0o600) -> None:
    """step's WriteFile: overwrite protection, then an atomic write with ``mode``."""
    target = Path(path)
    ui.check_overwrite(target, force)
    try:
        x509util.write_private(target, data, mode=mode)
    except OSError as exc:
        raise StepError(f"error writing {path}: {exc.strerror}") from None


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2)


# -- key files -------------------------------------------------------------------------------------

def is_jwe_text(text: str) -> bool:
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return False
        return isinstance(data, dict) and "ciphertext" in data
    return text.count(".") == 4 and "\n" not in text


def parse_jwk_text(text: str, path: str, password_file: str | None) -> dict[str, Any]:
    """A JWK dict from plain JWK JSON or a password-encrypted JWE (compact or JSON)."""
    if is_jwe_text(text):
        from stepca import jose

        password = decrypt_password(password_file, path)
        try:
            plain = jose.decrypt_pbes2(jose.read_jwe(text), password)
        except jose.JOSEFormatError as exc:
            raise StepError(f"error reading {path}: {exc}") from None
        except ValueError as exc:
            raise StepError(f"error decrypting {path}: {exc}") from None
        text = plain.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        raise StepError(f"error reading {path}: not a JWK, JWE or PEM file") from None
    if not isinstance(data, dict) or "kty" not in data:
        raise StepError(f"error reading {path}: not a JWK")
    return data


def is_encrypted_pem(data: bytes) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_pem_key(data: bytes, path: str, password_file: str | None) -> Any:
    """A private or public key from PEM (asks for the password only when it is encrypted)."""
    if b"PRIVATE KEY" in data:
        password = decrypt_password(password_file, path) if is_encrypted_pem(data) else None
        try:
            return x509util.load_private_key(data, password)
        except ValueError as exc:
            raise StepError(f"error decrypting {path}: {exc}") from None
    if b"CERTIFICATE" in data and b"BEGIN CERTIFICATE" in data:
        try:
            return x509util.load_certificates(data)[0].public_key()
        except ValueError as exc:
            raise StepError(f"error reading {path}: {exc}") from None
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        raise StepError(f"error reading {path}: unsupported PEM key") from None


def load_any_key(data: bytes, path: str, password_file: str | None) -> Any:
    """A ``cryptography`` key (or oct secret bytes) from PEM, DER, JWK or encrypted JWK."""
    if b"-----BEGIN" in data:
        return load_pem_key(data, path, password_file)
    text = data.decode("utf-8", "replace")
    if text.lstrip().startswith("{") or is_jwe_text(text):
        return key_of_jwk(parse_jwk_text(text, path, password_file), path)
    for loader in (lambda d: serialization.load_der_private_key(d, None),
                   serialization.load_der_public_key):
        try:
            return loader(data)
        except (ValueError, TypeError):
            continue
    raise StepError(f"error reading {path}: unsupported key format")


def key_of_jwk(data: dict[str, Any], path: str) -> Any:
    from stepca import jose

    if data.get("kty") == "oct":
        try:
            return jose.b64url_decode(str(data["k"]))
        except (KeyError, jose.JOSEFormatError):
            raise StepError(f"error reading {path}: oct JWK without a valid 'k'") from None
    try:
        return jose.key_from_jwk(data)
    except jose.JOSEFormatError as exc:
        raise StepError(f"error reading {path}: {exc}") from None


def jwk_of_key(key: Any, *, private: bool, kid: str | None = None, alg: str | None = None,
               use: str | None = None) -> dict[str, Any]:
    from stepca import jose

    if isinstance(key, bytes):
        data: dict[str, Any] = {"kty": "oct", "k": jose.b64url_encode(key)}
        data["kid"] = kid or jose.thumbprint(data)
        if alg:
            data["alg"] = alg
        if use:
            data["use"] = use
        return data if private else jose.public_jwk(data)
    if private and not is_private(key):
        private = False
    return jose.jwk_from_key(key, kid=kid, alg=alg, use=use, private=private)


def is_private(key: Any) -> bool:
    return isinstance(key, (bytes, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey,
                            ed25519.Ed25519PrivateKey))


def public_of(key: Any) -> Any:
    if isinstance(key, bytes):
        raise StepError("a symmetric (oct) key has no public key")
    return key.public_key() if is_private(key) else key


def load_key_jwk(key_path: str | None, jwks_path: str | None, kid: str | None,
                 password_file: str | None) -> dict[str, Any]:
    """The JWK chosen by ``--key`` or ``--jwks`` + ``--kid`` (private when the file has it)."""
    if key_path and jwks_path:
        raise StepError("flag '--key' and flag '--jwks' are mutually exclusive")
    if jwks_path:
        if not kid:
            raise StepError("flag '--jwks' requires the '--kid' flag")
        text = read_file(jwks_path).decode("utf-8", "replace")
        try:
            keys = json.loads(text).get("keys", [])
        except (ValueError, AttributeError):
            raise StepError(f"error reading {jwks_path}: not a JWK set") from None
        found = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid]
        if not found:
            raise StepError(f"cannot find key with kid {kid} on {jwks_path}")
        return found[0]
    if not key_path:
        raise StepError(f"'{command_path()}' requires the '--key' or '--jwks' flag")
    data = read_file(key_path)
    text = data.decode("utf-8", "replace")
    if not (text.lstrip().startswith("{") or is_jwe_text(text)):
        key = load_any_key(data, key_path, password_file)
        jwk = jwk_of_key(key, private=True, kid=kid, use=None)
        jwk.pop("alg", None)  # a PEM key names no algorithm: --alg (e.g. PS256) may choose one
        return jwk
    jwk = parse_jwk_text(text, key_path, password_file)
    if kid and jwk.get("kid") and jwk["kid"] != kid:
        raise StepError(f"the key in {key_path} has kid {jwk['kid']}, not {kid}")
    return jwk


def key_details(kty: str | None, curve: str | None, size: int | None, insecure: bool,
                *, allow_oct: bool = False) -> tuple[str, str, int]:
    """step's --kty/--crv/--size rules: defaults EC P-256, RSA 2048 minimum."""
    if curve and not kty:
        raise StepError("flag '--curve' requires the '--kty' flag")
    if size is not None and not kty:
        raise StepError("flag '--size' requires the '--kty' flag")
    kty = (kty or "EC").upper() if (kty or "EC").lower() != "oct" else "oct"
    options = ["EC", "OKP", "RSA"] + (["oct"] if allow_oct else [])
    if kty not in options:
        raise StepError(f"invalid value '{kty}' for flag '--kty'; options are "
                        f"{', '.join(options)}")
    if kty == "EC":
        curve = curve or "P-256"
        if curve not in ("P-256", "P-384", "P-521"):
            raise StepError(f"invalid value '{curve}' for flag '--curve'; options are P-256, "
                            "P-384, P-521")
    elif kty == "OKP":
        curve = curve or "Ed25519"
        if curve != "Ed25519":
            raise StepError(f"invalid value '{curve}' for flag '--curve'; options are Ed25519")
    elif curve:
        raise StepError(f"flag '--curve' is incompatible with '--kty {kty}'")
    if kty == "RSA":
        size = 2048 if size is None else size
        if size < 2048 and not insecure:
            raise StepError("flag '--size' requires at least 2048 unless '--insecure' flag is "
                            "provided")
        if size < 512:
            raise StepError("flag '--size' must be at least 512")
    if kty == "oct":
        size = 32 if size is None else size  # bytes
        if size < 16 and not insecure:
            raise StepError("flag '--size' requires at least 16 unless '--insecure' flag is "
                            "provided")
        if size < 1:
            raise StepError("flag '--size' must be positive")
    return kty, curve or "", size or 0


def new_key(kty: str, curve: str, size: int) -> Any:
    if kty == "oct":
        return os.urandom(size)
    return x509util.generate_key(kty, curve=curve or "P-256", size=size or 2048)


def public_pem(key: Any) -> bytes:
    return public_of(key).public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
