"""Issued certificates, spent token ids and revocations in one SQLite file (WAL mode).

The schema, its migrations, the statements and every read and write are
``stepca.sqlstore``'s, shared with the PostgreSQL store; this module brings the connections."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from stepca.sqlstore import SQLITE, SQLStore, migrate
from stepca.store import StoredCRL, StoreUnavailable

BUSY_SECONDS = 30.0  # how long a write, or a CRL builder, waits for the one before it


class SQLiteStore(SQLStore):
    type = "sqlite"
    shared_between_processes = True
    dialect = SQLITE
    token_id_taken = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._local = threading.local()
        self._prepare_file()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, steppath: Path) -> Self:
        return cls(database_path(config, steppath=steppath))

    def _prepare_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 ourselves; SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.schema_version = migrate(self._transaction, SQLITE, where=self.where,
                                      adopt_unversioned=_add_revocation_mark)

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and per process: a forked gunicorn worker must not reuse
        # its parent's.
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _begin(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: it takes the write lock at once, so a renewal's
        revocation check and its insert are one step against a revoke. ``durable``: its COMMIT
        returns only once the WAL is on disk (``synchronous=FULL``), so it survives a power
        loss; the others keep ``NORMAL``, which loses nothing when a process dies
        (docs/decisions/0011)."""
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

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        yield self._connection()  # autocommit: one statement reads one snapshot

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        """Built outside the write transaction: ``BEGIN IMMEDIATE`` would hold every issuance
        and revocation of every process for the whole build (a second and more for 100,000
        revocations). A lock on a file beside the database orders the builders instead, as
        PostgreSQL's advisory lock does; writers wait only for the insert."""
        with self._crl_builder_lock():
            with self._reading() as conn:
                row = conn.execute(self.SQL.last_crl_number).fetchone()
            crl = build((row[0] or 0) + 1)
            with self._transaction() as conn:
                self._keep_crl(conn, crl)
        return crl

    @contextmanager
    def _crl_builder_lock(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``<database>-crl.lock``: every process using the file runs
        on this machine (WAL needs shared memory), and each call opens the lock file anew, so
        threads of one process exclude each other too."""
        fd = os.open(f"{self.path}-crl.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + BUSY_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreUnavailable("another process has been building the CRL "
                                               f"for {BUSY_SECONDS:g} s") from None
                    time.sleep(0.02)
            yield  # closing the descriptor releases the lock
        finally:
            os.close(fd)

    def revocation_mark(self) -> int:
        # Rows of revoked_x509_certs are never deleted, so each new one gets a larger rowid;
        # MAX(rowid) reads one end of the table's b-tree.
        with self._reading() as conn:
            row = conn.execute("SELECT MAX(rowid) FROM revoked_x509_certs").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()


def database_path(config: Mapping[str, Any], *, steppath: Path) -> Path:
    """The SQLite file that ca.json's ``db`` block names."""
    source = config.get("dataSource") or str(steppath / "db" / "stepca.db")
    path = Path(os.path.expanduser(str(source)))
    if path.is_dir():  # a step-style db folder
        path = path / "stepca.db"
    return path if path.is_absolute() else steppath / path


def _add_revocation_mark(conn: sqlite3.Connection) -> None:
    """A database made before the revocation mark (and before schema versions) lacks it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(x509_crl)")}
    if columns and "revocation_mark" not in columns:
        conn.execute("ALTER TABLE x509_crl ADD COLUMN revocation_mark INTEGER")
