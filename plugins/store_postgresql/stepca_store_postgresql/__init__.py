"""stepca-store-postgresql: the store several CA instances share.

The store (and psycopg) is imported when a process asks for store types, not when the plugin is
registered: `step --help` registers every plugin and needs no database driver."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepca import hookimpl

if TYPE_CHECKING:
    from stepca.store import CertificateStore, RevocationStore

__all__ = ["PostgreSQLStore"]


def __getattr__(name: str) -> Any:
    if name == "PostgreSQLStore":
        from stepca_store_postgresql.store import PostgreSQLStore

        return PostgreSQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    from stepca_store_postgresql.store import PostgreSQLStore

    return [PostgreSQLStore]


@hookimpl
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    from stepca_store_postgresql.store import PostgreSQLStore

    return [PostgreSQLStore]
