"""The built-in key store: keys in PEM files, encrypted at rest, mode 0600.

Every process that loads plugins registers it, `step --help` too: cryptography is imported
when a key is read or made (decision 0043)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from stepca import hookimpl
from stepca.keystore import KeyNotFound, KeyStore


class SoftKeyStore(KeyStore):
    type = "softkms"

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, base_dir: Path) -> Self:
        return cls(base_dir)

    def _path(self, ref: str) -> Path:
        path = Path(ref.removeprefix("softkms:"))
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def load_signer(self, ref: str, *, password: bytes | None) -> Any:
        from stepca.x509util import load_private_key

        path = self._path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key file at {path}") from None
        return load_private_key(data, password)

    def create_signer(self, ref: str, *, password: bytes | None, kty: str = "EC",
                      curve: str = "P-256", size: int = 2048) -> Any:
        from stepca.x509util import encrypt_private_key, generate_key, write_private

        path = self._path(ref)
        if path.exists():
            raise FileExistsError(f"refusing to overwrite the key at {path}")
        key = generate_key(kty, curve=curve, size=size)
        write_private(path, encrypt_private_key(key, password))
        return key


@hookimpl
def stepca_key_stores() -> list[type[KeyStore]]:
    return [SoftKeyStore]
