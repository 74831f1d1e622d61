"""The key store interface: where the CA's signing keys live.

The built-in ``softkms`` store keeps keys in encrypted PEM files; an HSM or cloud KMS plugin
returns a ``cryptography`` private-key object whose ``sign`` calls the device, so the rest of the
authority never sees the difference. Selected by ``kms.type`` in ca.json (``softkms`` when absent).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

__all__ = ["KeyNotFound", "KeyStore"]


class KeyNotFound(LookupError):
    """No key exists under the reference given."""


class KeyStore(abc.ABC):
    type: ClassVar[str]
    """The ``kms.type`` value this class handles, e.g. ``"softkms"``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, base_dir: Path) -> Self:
        """Build the store from ca.json's ``kms`` object (empty for softkms defaults)."""
        return cls()

    @abc.abstractmethod
    def load_signer(self, ref: str, *, password: bytes | None) -> Any:
        """The private key named by ``ref`` (a path or a KMS URI), ready to sign.

        Raises ``KeyNotFound`` if there is none, ``ValueError`` if the password is wrong."""

    @abc.abstractmethod
    def create_signer(self, ref: str, *, password: bytes | None, kty: str = "EC",
                      curve: str = "P-256", size: int = 2048) -> Any:
        """Create a key under ``ref`` (encrypted with ``password`` where the store encrypts) and
        return it. Raises ``FileExistsError`` rather than replace an existing key."""
