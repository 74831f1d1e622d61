"""The built-in memory store's registration. Every process that loads plugins registers it,
``step --help`` too; its class (:mod:`stepca.memory_store`) is imported only when a store
registry is asked for (decision 0043)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepca import hookimpl

if TYPE_CHECKING:
    from stepca.store import CertificateStore, RevocationStore


@hookimpl
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    from stepca.memory_store import MemoryStore

    return [MemoryStore]


@hookimpl
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    from stepca.memory_store import MemoryStore

    return [MemoryStore]
