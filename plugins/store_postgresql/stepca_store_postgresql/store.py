"""Issued certificates, spent token ids, revocations and CRLs in one PostgreSQL database that
several CA instances share.

The schema, its migrations and the statements are ``stepca.sqlstore``'s, shared with the
SQLite store. Every transaction runs at READ COMMITTED, PostgreSQL's default; what must not
interleave across instances is ordered by locks (docs/decisions/0029):

- a token id is spent by inserting it (its primary key refuses a second one), in the
  transaction that writes what the token paid for;
- ``revoke`` increments the one row of ``revocation_counter``: that row lock orders
  revocations as they commit, so the counter is the revocation mark, and a renewal share-locks
  the row, so it cannot finish after a revocation of its certificate returned;
- ``next_crl`` builds under an advisory lock: one instance at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import psycopg
from cryptography import x509
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from stepca.errors import TokenAlreadyUsed
from stepca.sqlstore import (POSTGRESQL, Statements, certificate_from_row, certificate_row,
                             crl_from_row, crl_row, migrate, purge_in_batches,
                             revocation_from_row, revocation_row, seconds)
from stepca.store import (AlreadyRevoked, CertificateRevoked, CertificateStore, ProvisionerRef,
                          Purged, RevocationInfo, RevocationStore, StoredCRL, StoreStartError)

SQL = Statements.for_dialect(POSTGRESQL)
CONNECT_TIMEOUT = 10  # seconds; libpq's connect_timeout
POOL_WAIT = 30.0  # seconds a request waits for a pooled connection
POOL_SIZE = 10  # per process
CRL_LOCK = "SELECT pg_advisory_xact_lock(7301935200116)"  # any fixed key but migrate's
BUMP_REVOCATION_MARK = "UPDATE revocation_counter SET mark = mark + 1"
SHARE_REVOCATION_MARK = "SELECT mark FROM revocation_counter FOR SHARE"
READ_REVOCATION_MARK = "SELECT mark FROM revocation_counter"


class PostgreSQLStore(CertificateStore, RevocationStore):
    type = "postgresql"
    shared_between_processes = True

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.where = _describe(conninfo)
        self._lock = threading.Lock()
        self._pool_pid: int | None = None
        self._pool_: ConnectionPool | None = None
        self.schema_version = self._migrate()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, steppath: Path) -> Self:
        source = config.get("dataSource")
        if not source:
            raise StoreStartError('db.dataSource is required for db.type "postgresql", e.g. '
                                  '"postgresql://user:pass@host:5432/"')
        try:
            params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
            if config.get("database"):
                params["dbname"] = str(config["database"])
            conninfo = make_conninfo(str(source), **params)
        except psycopg.ProgrammingError:
            # the message may quote the DSN, password and all
            raise StoreStartError("db.dataSource is not a valid PostgreSQL connection string "
                                  "(expected postgresql://user:pass@host:5432/)") from None
        return cls(conninfo)

    def _migrate(self) -> int:
        """Migrate on a connection of its own: the pool, with its threads, opens only when a
        request needs it, in the process that serves it (never in the forking master)."""
        try:
            with psycopg.connect(self.conninfo) as conn:
                @contextmanager
                def transaction() -> Iterator[psycopg.Connection]:
                    with conn.transaction():
                        yield conn
                return migrate(transaction, POSTGRESQL, where=self.where)
        except psycopg.OperationalError as exc:
            raise StoreStartError(f"cannot use the PostgreSQL database {self.where}: "
                                  f"{_reason(exc, self.conninfo)}") from None

    def _pool(self) -> ConnectionPool:
        # One pool per process: a forked gunicorn worker must not use its parent's sockets
        # (nor close them: they are the parent's), so it builds its own on first use.
        with self._lock:
            if self._pool_ is None or self._pool_pid != os.getpid():
                self._pool_ = ConnectionPool(self.conninfo, min_size=1, max_size=POOL_SIZE,
                                             timeout=POOL_WAIT, open=True,
                                             check=ConnectionPool.check_connection,
                                             name=f"stepca {self.where}")
                self._pool_pid = os.getpid()
            return self._pool_

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """One transaction on a pooled connection: committed when the block ends, rolled back
        when it raises."""
        with self._pool().connection() as conn:
            yield conn

    @staticmethod
    def _spend(conn: psycopg.Connection, token_id: str,
               expires_at: datetime | None = None) -> None:
        try:
            conn.execute(SQL.spend_token, (token_id, seconds(datetime.now(UTC)),
                                           seconds(expires_at)))
        except pg_errors.UniqueViolation:
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
        with self._transaction() as conn:
            # waits for a revoke in flight; the check after it (a new READ COMMITTED snapshot)
            # sees that revocation, and a later revoke waits for this commit
            conn.execute(SHARE_REVOCATION_MARK)
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
        with self._transaction() as conn:
            row = conn.execute(SQL.select_certificate, (str(serial),)).fetchone()
        return certificate_from_row(row) if row is not None else None

    def revoke(self, info: RevocationInfo, *, token_expires_at: datetime | None = None) -> None:
        # durable: PostgreSQL's COMMIT waits for the WAL flush (synchronous_commit's default)
        with self._transaction() as conn:
            if info.token_id is not None:  # first: a replayed token is refused as a replay
                self._spend(conn, info.token_id, token_expires_at)
            conn.execute(BUMP_REVOCATION_MARK)  # from here, revocations run one at a time
            if self._is_revoked(conn, info.serial):
                raise AlreadyRevoked(info.serial)  # rolls the spent id and the mark back
            conn.execute(SQL.insert_revocation, revocation_row(info))

    def is_revoked(self, serial: int) -> bool:
        with self._transaction() as conn:
            return self._is_revoked(conn, serial)

    @staticmethod
    def _is_revoked(conn: psycopg.Connection, serial: int) -> bool:
        return conn.execute(SQL.is_revoked, (str(serial),)).fetchone() is not None

    def revoked_certificates(self) -> list[RevocationInfo]:
        return self._revocations(SQL.select_revocations, ())

    def _revocations(self, statement: str, args: tuple[Any, ...]) -> list[RevocationInfo]:
        with self._transaction() as conn:
            rows = conn.execute(statement, args).fetchall()
        return [revocation_from_row(row) for row in rows]

    def revocation(self, serial: int) -> RevocationInfo | None:
        found = self._revocations(SQL.select_revocation, (str(serial),))
        return found[0] if found else None

    def revocation_mark(self) -> int:
        with self._transaction() as conn:
            row = conn.execute(READ_REVOCATION_MARK).fetchone()
        return int(row[0]) if row else 0

    def current_crl(self) -> StoredCRL | None:
        with self._transaction() as conn:
            row = conn.execute(SQL.current_crl).fetchone()
        return crl_from_row(row) if row else None

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        with self._transaction() as conn:
            conn.execute(CRL_LOCK)  # one builder across instances; released at commit
            row = conn.execute(SQL.last_crl_number).fetchone()
            crl = build((row[0] or 0) + 1)
            conn.execute(SQL.insert_crl, crl_row(crl))
            # Only the newest CRL is ever served; keep a short history for audits.
            conn.execute(SQL.delete_old_crls, (crl.number - 10,))
        return crl

    def close(self) -> None:
        with self._lock:
            if self._pool_ is not None and self._pool_pid == os.getpid():
                self._pool_.close()
            self._pool_, self._pool_pid = None, None


def _describe(conninfo: str) -> str:
    """user@host:port/database, never the password."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = f"{params['user']}@" if params.get("user") else ""
    return f"{user}{host}:{port}/{params.get('dbname') or ''}"


def _reason(exc: BaseException, conninfo: str) -> str:
    """libpq's message on one line (it spans several), the password cut out should it
    appear."""
    text = " ".join(str(exc).split())
    password = conninfo_to_dict(conninfo).get("password")
    if password:
        text = text.replace(str(password), "***")
    return text or type(exc).__name__
