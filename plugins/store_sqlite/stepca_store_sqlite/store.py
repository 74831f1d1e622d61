"""Issued certificates, spent token ids and revocations in one SQLite file (WAL mode)."""

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
from stepca.store import (AlreadyRevoked, CertificateRevoked, CertificateStore, ProvisionerRef,
                          RevocationInfo, RevocationStore, StoredCRL)
from stepca.x509util import certificate_der

SCHEMA = """
CREATE TABLE IF NOT EXISTS x509_certs (
    serial TEXT PRIMARY KEY,
    der BLOB NOT NULL,
    provisioner_id TEXT,
    provisioner_name TEXT,
    provisioner_type TEXT,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS used_ott (
    id TEXT PRIMARY KEY,
    used_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_x509_certs (
    serial TEXT PRIMARY KEY,
    provisioner_id TEXT NOT NULL,
    reason_code INTEGER NOT NULL,
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER,
    token_id TEXT,
    mtls INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS x509_crl (
    number INTEGER PRIMARY KEY,
    der BLOB NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    revocation_mark INTEGER
);
"""


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
        conn = self._connection()
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(x509_crl)")}
        if "revocation_mark" not in columns:  # a database made before the mark existed
            conn.execute("ALTER TABLE x509_crl ADD COLUMN revocation_mark INTEGER")

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
    def _spend(conn: sqlite3.Connection, token_id: str) -> None:
        try:
            conn.execute("INSERT INTO used_ott (id, used_at) VALUES (?, ?)",
                         (token_id, int(datetime.now(UTC).timestamp())))
        except sqlite3.IntegrityError:
            raise TokenAlreadyUsed() from None

    def store_certificate(self, certificate: x509.Certificate, *,
                          provisioner: ProvisionerRef | None, token_id: str | None) -> None:
        row = _certificate_row(certificate, provisioner)
        with self._transaction() as conn:
            if token_id is not None:
                self._spend(conn, token_id)
            conn.execute("INSERT INTO x509_certs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def store_renewed_certificate(self, certificate: x509.Certificate, *, renewed_from: int,
                                  provisioner: ProvisionerRef | None,
                                  token_id: str | None) -> None:
        row = _certificate_row(certificate, provisioner)
        # BEGIN IMMEDIATE takes the write lock revoke needs: the check and the insert are one
        with self._transaction() as conn:
            if self._is_revoked(conn, renewed_from):
                raise CertificateRevoked()
            if token_id is not None:
                self._spend(conn, token_id)
            conn.execute("INSERT INTO x509_certs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def spend_token(self, token_id: str) -> None:
        with self._transaction() as conn:
            self._spend(conn, token_id)

    def get_certificate(self, serial: int) -> tuple[x509.Certificate, ProvisionerRef | None] | None:
        row = self._connection().execute(
            "SELECT der, provisioner_id, provisioner_name, provisioner_type FROM x509_certs "
            "WHERE serial = ?", (str(serial),)).fetchone()
        if row is None:
            return None
        ref = ProvisionerRef(row[1], row[2], row[3]) if row[1] is not None else None
        return x509.load_der_x509_certificate(row[0]), ref

    def revoke(self, info: RevocationInfo) -> None:
        # durable: a revocation the CA acknowledged must survive a power loss
        with self._transaction(durable=True) as conn:
            if info.token_id is not None:  # first: a replayed token is refused as a replay
                self._spend(conn, info.token_id)
            if self._is_revoked(conn, info.serial):
                raise AlreadyRevoked(info.serial)  # rolls the spent id back
            conn.execute(
                "INSERT INTO revoked_x509_certs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (str(info.serial), info.provisioner_id, info.reason_code, info.reason,
                 int(info.revoked_at.timestamp()),
                 int(info.expires_at.timestamp()) if info.expires_at else None,
                 info.token_id, int(info.mtls)))

    def is_revoked(self, serial: int) -> bool:
        return self._is_revoked(self._connection(), serial)

    @staticmethod
    def _is_revoked(conn: sqlite3.Connection, serial: int) -> bool:
        return conn.execute("SELECT 1 FROM revoked_x509_certs WHERE serial = ?",
                            (str(serial),)).fetchone() is not None

    def revoked_certificates(self) -> list[RevocationInfo]:
        return self._revocations("ORDER BY revoked_at", ())

    def _revocations(self, clause: str, args: tuple[Any, ...]) -> list[RevocationInfo]:
        rows = self._connection().execute(
            "SELECT serial, provisioner_id, reason_code, reason, revoked_at, expires_at, token_id, "
            f"mtls FROM revoked_x509_certs {clause}", args).fetchall()
        return [RevocationInfo(int(r[0]), r[1], r[2], r[3],
                               datetime.fromtimestamp(r[4], UTC),
                               datetime.fromtimestamp(r[5], UTC) if r[5] is not None else None,
                               r[6], bool(r[7])) for r in rows]

    def revocation(self, serial: int) -> RevocationInfo | None:
        found = [r for r in self._revocations("WHERE serial = ?", (str(serial),))]
        return found[0] if found else None

    def revocation_mark(self) -> int:
        # Rows of revoked_x509_certs are never deleted, so each new one gets a larger rowid;
        # MAX(rowid) reads one end of the table's b-tree.
        row = self._connection().execute("SELECT MAX(rowid) FROM revoked_x509_certs").fetchone()
        return int(row[0] or 0)

    def current_crl(self) -> StoredCRL | None:
        row = self._connection().execute(
            "SELECT number, der, this_update, next_update, revocation_mark FROM x509_crl "
            "ORDER BY number DESC LIMIT 1").fetchone()
        return _crl(row) if row else None

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        with self._transaction() as conn:
            row = conn.execute("SELECT MAX(number) FROM x509_crl").fetchone()
            crl = build((row[0] or 0) + 1)
            conn.execute("INSERT INTO x509_crl (number, der, this_update, next_update, "
                         "revocation_mark) VALUES (?, ?, ?, ?, ?)",
                         (crl.number, crl.der, int(crl.this_update.timestamp()),
                          int(crl.next_update.timestamp()), crl.revocation_mark))
            # Only the newest CRL is ever served; keep a short history for audits.
            conn.execute("DELETE FROM x509_crl WHERE number < ?", (crl.number - 10,))
        return crl

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()


def _certificate_row(certificate: x509.Certificate,
                     provisioner: ProvisionerRef | None) -> tuple[Any, ...]:
    return (str(certificate.serial_number), certificate_der(certificate),
            provisioner.id if provisioner else None, provisioner.name if provisioner else None,
            provisioner.type if provisioner else None,
            int(certificate.not_valid_before_utc.timestamp()),
            int(certificate.not_valid_after_utc.timestamp()), int(datetime.now(UTC).timestamp()))


def _crl(row: tuple[Any, ...]) -> StoredCRL:
    return StoredCRL(int(row[0]), bytes(row[1]), datetime.fromtimestamp(row[2], UTC),
                     datetime.fromtimestamp(row[3], UTC), row[4])
