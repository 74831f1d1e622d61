"""The client side of JWK provisioners, as ``step ca token`` has it: the provisioner's escrowed
key (``encryptedKey``, online from ``/provisioners/<kid>/encrypted-key``) unlocked with its
password, or a key given with ``--key``, signs the token.

Imported by the CLI only when a JWK provisioner is used (``stepca_jwk.CLIENTS``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from stepca.jose import JOSEFormatError, decrypt_pbes2, jwk_from_key, key_from_jwk, thumbprint
from stepca.provisioner_client import ClientFlag, ProvisionerClient, TokenRequest
from stepca.x509util import load_private_key
from stepca_cli import ui
from stepca_cli.errors import StepError
from stepca_cli.tokens import make_token

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
