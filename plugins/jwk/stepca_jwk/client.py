"""The client side of JWK provisioners, as ``step ca token`` has it: the provisioner's escrowed
key (``encryptedKey``, online from ``/provisioners/<kid>/encrypted-key``) unlocked with its
password, or a key given with ``--key``, signs the token.

Imported by the CLI only when a JWK provisioner is used (``stepca_jwk.CLIENTS``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from stepca.jose import (
    JOSEFormatError,
    decrypt_pbes2,
    jwk_from_key,
    key_from_jwk,
    public_jwk,
    read_jwe,
    thumbprint,
)
from stepca.pki import escrow_private_jwk, new_provisioner_key
from stepca.provisioner_client import ClientFlag, ProvisionerClient, TokenRequest
from stepca.x509util import load_private_key
from stepca_cli import ui
from stepca_cli.errors import StepError
from stepca_cli.tokens import make_token

MAX_KEY_FILE = 1024 * 1024  # a key file is a few kilobytes
NEW_KEY_PASSWORD = ("Please enter a password to encrypt the provisioner private key? [leave "
                    "empty and we'll generate one]")

__all__ = ["JWKClient", "load_signing_key", "unlock_escrowed_key"]


class JWKClient(ProvisionerClient):
    type = "JWK"
    flags: ClassVar[frozenset[ClientFlag]] = frozenset(
        {"key", "password-file", "provisioner-password-file"})

    def token(self, request: TokenRequest) -> str:
        entry = request.provisioner
        name = str(entry.get("name", ""))
        if request.key_file:
            key, key_kid = load_signing_key(request.key_file, request.password,
                                            command=request.command)
            kid = request.kid or key_kid
        else:
            kid = str((entry.get("key") or {}).get("kid", ""))
            # Online, the escrowed key comes from its own endpoint, as the design document says.
            jwe = (request.fetch_json(f"/provisioners/{kid}/encrypted-key").get("key")
                   if request.fetch_json is not None else entry.get("encryptedKey"))
            if not jwe:
                raise StepError(f"provisioner '{name}' has no escrowed key: use --key")
            key = unlock_escrowed_key(jwe, request.password, command=request.command,
                                      password_flag=request.password_flag)
        return make_token(key=key, kid=kid, issuer=name, subject=request.subject,
                          audience=request.audience, sans=request.sans,
                          root_fingerprint=request.root_fingerprint,
                          not_before=request.not_before, not_after=request.not_after)


    def edit_entry(self, entry: dict[str, Any], inputs: Mapping[str, Any], *, adding: bool,
                   command: str) -> None:
        """``--create``, or ``--public-key`` and/or ``--private-key``, become ``key`` and
        ``encryptedKey`` as step writes them."""
        create, public_file = inputs.get("create"), inputs.get("public-key")
        private_file = inputs.get("private-key")
        for flag in ("public-key", "private-key"):
            if create and inputs.get(flag) is not None:
                raise ValueError(f"flag '--create' is incompatible with '--{flag}'")
        if public_file == "":
            raise ValueError("flag '--public-key' cannot be empty")
        if adding and not create and not public_file and not private_file:
            raise ValueError(f"'{command}' requires the '--create' flag or the '--public-key' "
                             "flag for a JWK provisioner")
        if inputs.get("password-file") and not (create or private_file):
            raise ValueError("flag '--password-file' is only used with '--create' or "
                             "'--private-key'")
        if create:
            password = _new_key_password(inputs, command)
            entry["key"], entry["encryptedKey"] = new_provisioner_key(password)
            return
        key = _read_public_key(public_file) if public_file else None
        if private_file == "":  # update: stop keeping the private key in ca.json
            entry.pop("encryptedKey", None)
        elif private_file:
            escrowed, private_public = _read_private_key(private_file)
            # the key it must belong to: --public-key's, else (update) the provisioner's own
            owner = key if key is not None or adding else entry.get("key")
            if owner is None:
                if private_public is None:
                    raise ValueError("flag '--private-key' with an encrypted key requires "
                                     "the '--public-key' flag")
                key = owner = private_public
            elif private_public is not None and not _same_key(private_public, owner):
                whose = "'--public-key'" if key is not None else "the provisioner's key"
                raise ValueError(f"the key of '--private-key' is not the private key of {whose}")
            if isinstance(escrowed, dict):  # a plain key: sealed with the password
                escrowed = escrow_private_jwk({**escrowed, "kid": owner["kid"]},
                                              _new_key_password(inputs, command))
            entry["encryptedKey"] = escrowed
        elif key is not None and not adding and not _same_key(key, entry.get("key")):
            entry.pop("encryptedKey", None)  # the escrowed key belongs to the old public key
        if key is not None:
            entry["key"] = key


def _same_key(one: Any, other: Any) -> bool:
    try:
        return thumbprint(one) == thumbprint(other)
    except (JOSEFormatError, KeyError, TypeError):
        return False


def _new_key_password(inputs: Mapping[str, Any], command: str) -> bytes:
    return (ui.read_password_file(inputs.get("password-file"), "password-file")
            or ui.new_password(NEW_KEY_PASSWORD, flag="password-file", command=command))


def _read_key_file(path: str, flag: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ValueError(f"error reading --{flag} {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise ValueError(f"error reading --{flag} {path}: larger than {MAX_KEY_FILE} bytes")
    return data.decode("utf-8", "replace").strip()


def _key_jwk(text: str, path: str, flag: str, *, private: bool) -> dict[str, Any]:
    """The JWK of a JWK or PEM key file, with the file's ``kid`` or the thumbprint."""
    try:
        if text.startswith("{"):
            data = json.loads(text)
            if not isinstance(data, dict) or "kty" not in data:
                raise ValueError("not a JWK")
            if data["kty"] == "oct":
                raise ValueError("a symmetric key cannot be used as a provisioner")
            key = key_from_jwk(data)
            kid, alg = str(data.get("kid") or "") or None, data.get("alg")
        elif "PRIVATE KEY" in text:
            if "ENCRYPTED" in text:
                raise ValueError("an encrypted PEM key is not supported: give a JWK, a JWE "
                                 "or an unencrypted PEM key")
            key, kid, alg = load_private_key(text.encode(), None), None, None
        else:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            key, kid, alg = load_pem_public_key(text.encode()), None, None
        is_private = hasattr(key, "public_key")
        if private and not is_private:
            raise ValueError("the file holds a public key")
        return jwk_from_key(key, kid=kid, alg=alg, private=private and is_private)
    except (ValueError, TypeError, JOSEFormatError) as exc:
        raise ValueError(f"error reading --{flag} {path}: {exc}") from None


def _read_public_key(path: str) -> dict[str, Any]:
    return public_jwk(_key_jwk(_read_key_file(path, "public-key"), path, "public-key",
                               private=False))


def _read_private_key(path: str) -> tuple[str | dict[str, Any], dict[str, Any] | None]:
    """A ``--private-key``: an escrowed JWE as it is (its public key unknown), or the private
    JWK to seal and its public JWK."""
    text = _read_key_file(path, "private-key")
    if text.count(".") == 4 and not text.startswith(("{", "-----")) or '"ciphertext"' in text:
        try:
            return read_jwe(text), None
        except (ValueError, JOSEFormatError) as exc:
            raise ValueError(f"error reading --private-key {path}: {exc}") from None
    private = _key_jwk(text, path, "private-key", private=True)
    return private, public_jwk(private)


def unlock_escrowed_key(jwe: str, password: bytes | None, *, command: str,
                        password_flag: str = "provisioner-password-file") -> Any:
    if password is None:
        password = ui.ask_password("Please enter the password to decrypt the provisioner key",
                                   flag=password_flag, command=command)
    try:
        jwk = json.loads(decrypt_pbes2(jwe, password))
        return key_from_jwk(jwk)
    except (ValueError, JOSEFormatError) as exc:
        raise StepError(f"error decrypting the provisioner key: {exc}") from None


def load_signing_key(path: str, password: bytes | None, *, command: str) -> tuple[Any, str]:
    """A ``--key`` file: a JWK (JSON, or a PBES2 JWE of one) or a PEM private key."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StepError(f"error reading --key {path}: {exc.strerror}") from None
    text = data.strip()
    try:
        if text.startswith(b"{"):
            obj = json.loads(text)
            if "protected" in obj or "ciphertext" in obj:
                raise StepError("--key: JWE JSON serialization is not supported; use the "
                                "compact form")
            key = key_from_jwk(obj)
            return key, str(obj.get("kid") or thumbprint(obj))
        if text.count(b".") == 4 and not text.startswith(b"-----"):
            key = unlock_escrowed_key(text.decode(), password, command=command)
        else:
            try:
                key = load_private_key(data, password)
            except ValueError:
                if password is not None:
                    raise
                password = ui.ask_password("Please enter the password to decrypt the key",
                                           flag="password-file", command=command)
                key = load_private_key(data, password)
    except (ValueError, JOSEFormatError) as exc:
        raise StepError(f"error reading --key {path}: {exc}") from None
    return key, jwk_from_key(key)["kid"]
