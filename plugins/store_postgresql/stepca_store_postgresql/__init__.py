"""stepca-store-postgresql: the store several CA instances share."""

from __future__ import annotations

from stepca import hookimpl
from stepca.store import CertificateStore, RevocationStore
from stepca_store_postgresql.store import PostgreSQLStore

__all__ = ["PostgreSQLStore"]


@hookimpl
def stepca_certificate_stores() -> list[type[CertificateStore]]:
    return [PostgreSQLStore]


@hookimpl
def stepca_revocation_stores() -> list[type[RevocationStore]]:
    return [PostgreSQLStore]
