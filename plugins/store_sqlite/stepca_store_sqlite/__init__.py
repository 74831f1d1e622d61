"""stepca-store-sqlite: the embedded SQLite store.

The store is imported when a process asks for store types (the CA at start-up, `step plugins`),
not when the plugin is registered: `step --help` registers every plugin for its commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepca import hookimpl

if TYPE_CHECKING:
    from stepca.store import CertificateStore, RevocationStore

__all__ = ["SQLiteStore"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        from stepca_store_sqlite.store import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    from stepca_store_sqlite.store import SQLiteStore

    return [SQLiteStore]


@hookimpl
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    from stepca_store_sqlite.store import SQLiteStore

    return [SQLiteStore]
