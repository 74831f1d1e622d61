"""Issued certificates, spent token ids and revocations in one SQLite file (WAL mode).

The schema, its migrations and the statements are ``stepca.sqlstore``'s, shared with the
PostgreSQL store."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from cryptography import x509

from stepca.errors import TokenAlreadyUsed
from stepca.sqlstore import (SQLITE, Statements, certificate_from_row, certificate_row,
                             crl_from_row, crl_row, migrate, purge_in_batches,
                             revocation_from_row, revocation_row, seconds)
from stepca.store import (AlreadyRevoked, CertificateRevoked, CertificateStore, ProvisionerRef,
                          Purged, RevocationInfo, RevocationStore, StoredCRL)

SQL = Statements.for_dialect(SQLITE)


class SQLiteStore(CertificateStore, RevocationStore):
    type = "sqlite"
    shared_between_processes = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._prepare_file()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, steppath: Path) -> Self:
        source = config.get("dataSource") or str(steppath / "db" / "stepca.db")
        path = Path(os.path.expanduser(str(source)))
        if path.is_dir():  # a step-style db folder
            path = path / "stepca.db"
        return cls(path if path.is_absolute() else steppath / path)

    def _prepare_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 ourselves; SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.schema_version = migrate(self._transaction, SQLITE, where=str(self.path),
                                      adopt_unversioned=_add_revocation_mark)

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and per process: a forked gunicorn worker must not reuse
        # its parent's.
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction. ``durable``: its COMMIT returns only once the
        WAL is on disk (``synchronous=FULL``), so it survives a power loss; the others keep
        ``NORMAL``, which loses nothing when a process dies (docs/decisions/0011)."""
        conn = self._connection()
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if durable:
                conn.execute("PRAGMA synchronous=NORMAL")

    @staticmethod
    def _spend(conn: sqlite3.Connection, token_id: str,
               expires_at: datetime | None = None) -> None:
        try:
            conn.execute(SQL.spend_token, (token_id, seconds(datetime.now(UTC)),
                                           seconds(expires_at)))
        except sqlite3.IntegrityError:
            raise TokenAlreadyUsed() from None

    def store_certificate(self, certificate: x509.Certificate, *,
                          provisioner: ProvisionerRef | None, token_id: str | None,
                          token_expires_at: datetime | None = None) -> None:
        row = certificate_row(certificate, provisioner, datetime.now(UTC))
        with self._transaction() as conn:
            if token_id is not None:
                self._spend(conn, token_id, token_expires_at)
            conn.execute(SQL.insert_certificate, row)

    def store_renewed_certificate(self, certificate: x509.Certificate, *, renewed_from: int,
                                  provisioner: ProvisionerRef | None,
                                  token_id: str | None,
                                  token_expires_at: datetime | None = None) -> None:
        row = certificate_row(certificate, provisioner, datetime.now(UTC))
        # BEGIN IMMEDIATE takes the write lock revoke needs: the check and the insert are one
        with self._transaction() as conn:
            if self._is_revoked(conn, renewed_from):
                raise CertificateRevoked()
            if token_id is not None:
                self._spend(conn, token_id, token_expires_at)
            conn.execute(SQL.insert_certificate, row)

    def spend_token(self, token_id: str, *, token_expires_at: datetime | None = None) -> None:
        with self._transaction() as conn:
            self._spend(conn, token_id, token_expires_at)

    def purge(self, *, token_ids_expired_before: datetime,
              certificates_expired_before: datetime | None = None) -> Purged:
        tokens = purge_in_batches(self._transaction, SQL.purge_token_ids,
                                  token_ids_expired_before)
        certificates = 0 if certificates_expired_before is None else purge_in_batches(
            self._transaction, SQL.purge_certificates, certificates_expired_before)
        return Purged(token_ids=tokens, certificates=certificates)

    def get_certificate(self, serial: int) -> tuple[x509.Certificate, ProvisionerRef | None] | None:
        row = self._connection().execute(SQL.select_certificate, (str(serial),)).fetchone()
        return certificate_from_row(row) if row is not None else None

    def revoke(self, info: RevocationInfo, *, token_expires_at: datetime | None = None) -> None:
        # durable: a revocation the CA acknowledged must survive a power loss
        with self._transaction(durable=True) as conn:
            if info.token_id is not None:  # first: a replayed token is refused as a replay
                self._spend(conn, info.token_id, token_expires_at)
            if self._is_revoked(conn, info.serial):
                raise AlreadyRevoked(info.serial)  # rolls the spent id back
            conn.execute(SQL.insert_revocation, revocation_row(info))

    def is_revoked(self, serial: int) -> bool:
        return self._is_revoked(self._connection(), serial)

    @staticmethod
    def _is_revoked(conn: sqlite3.Connection, serial: int) -> bool:
        return conn.execute(SQL.is_revoked, (str(serial),)).fetchone() is not None

    def revoked_certificates(self) -> list[RevocationInfo]:
        return self._revocations(SQL.select_revocations, ())

    def _revocations(self, statement: str, args: tuple[Any, ...]) -> list[RevocationInfo]:
        rows = self._connection().execute(statement, args).fetchall()
        return [revocation_from_row(row) for row in rows]

    def revocation(self, serial: int) -> RevocationInfo | None:
        found = self._revocations(SQL.select_revocation, (str(serial),))
        return found[0] if found else None

    def revocation_mark(self) -> int:
        # Rows of revoked_x509_certs are never deleted, so each new one gets a larger rowid;
        # MAX(rowid) reads one end of the table's b-tree.
        row = self._connection().execute("SELECT MAX(rowid) FROM revoked_x509_certs").fetchone()
        return int(row[0] or 0)

    def current_crl(self) -> StoredCRL | None:
        row = self._connection().execute(SQL.current_crl).fetchone()
        return crl_from_row(row) if row else None

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        with self._transaction() as conn:
            row = conn.execute(SQL.last_crl_number).fetchone()
            crl = build((row[0] or 0) + 1)
            conn.execute(SQL.insert_crl, crl_row(crl))
            # Only the newest CRL is ever served; keep a short history for audits.
            conn.execute(SQL.delete_old_crls, (crl.number - 10,))
        return crl

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()


def _add_revocation_mark(conn: sqlite3.Connection) -> None:
    """A database made before the revocation mark (and before schema versions) lacks it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(x509_crl)")}
    if columns and "revocation_mark" not in columns:
        conn.execute("ALTER TABLE x509_crl ADD COLUMN revocation_mark INTEGER")
