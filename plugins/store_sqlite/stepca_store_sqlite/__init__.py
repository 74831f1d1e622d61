"""stepca-store-sqlite: the embedded SQLite store."""

from __future__ import annotations

from stepca import hookimpl
from stepca.store import CertificateStore, RevocationStore
from stepca_store_sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]


@hookimpl
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    return [SQLiteStore]


@hookimpl
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    return [SQLiteStore]
