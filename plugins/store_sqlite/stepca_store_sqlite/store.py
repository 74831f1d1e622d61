"""Issued certificates, spent token ids and revocations in one SQLite file (WAL mode).

The schema, its migrations, the statements and every read and write are
``stepca.sqlstore``'s, shared with the PostgreSQL store; this module brings the connections."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from time import monotonic, sleep
from typing import Any, Self

from stepca.sqlstore import SQLITE, SQLStore, migrate
from stepca.store import StoredCRL, StoreUnavailable

BUSY_SECONDS = 30  # how long a write, or a CRL builder, waits for the one before it
FIRST_RETRY_SECONDS, LAST_RETRY_SECONDS = 50e-6, 1e-3  # between tries for the write lock
CRL_LOCK_RETRY_SECONDS = 0.02  # between tries for the CRL builder's lock
CHECKPOINT_SECONDS = 0.1  # between the checkpoint thread's copies of the WAL
# A write still checkpoints itself past this many WAL pages (40 MiB), if the thread lags.
SAFETY_NET_PAGES = 10_000

log = logging.getLogger("stepca.store.sqlite")


class SQLiteStore(SQLStore):
    type = "sqlite"
    shared_between_processes = True
    dialect = SQLITE
    token_id_taken = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._local = threading.local()
        self._checkpointer: _Checkpointer | None = None
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

    def _connection(self, *, writer: bool = False) -> sqlite3.Connection:
        """This thread's connection for reads, or for transactions (``writer``). One of each per
        thread and per process: a forked gunicorn worker must not reuse its parent's. The
        writer waits for the write lock in ``_take_write_lock``, so SQLite's own wait is off
        there; reads keep it."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connections, local.pid = {}, os.getpid()
        conn = local.connections.get(writer)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
            if writer:
                conn.execute("PRAGMA busy_timeout=0")
            local.connections[writer] = conn
            checkpointer = self._checkpointer
            if checkpointer is None or checkpointer.pid != os.getpid():
                self._checkpointer = _Checkpointer(self.path)
        return conn

    @contextmanager
    def _begin(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: it takes the write lock at once, so a renewal's
        revocation check and its insert are one step against a revoke. ``durable``: its COMMIT
        returns only once the WAL is on disk (``synchronous=FULL``), so it survives a power
        loss; the others keep ``NORMAL``, which loses nothing when a process dies
        (docs/decisions/0011)."""
        conn = self._connection(writer=True)
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        try:
            _take_write_lock(conn)
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
            def take() -> bool:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            if not _retried(take, first=CRL_LOCK_RETRY_SECONDS, last=CRL_LOCK_RETRY_SECONDS):
                raise StoreUnavailable("another process has been building the CRL for "
                                       f"{BUSY_SECONDS:g} s")
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
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None and checkpointer.pid == os.getpid():
            checkpointer.stop()
        if getattr(self._local, "pid", None) == os.getpid():
            for conn in self._local.connections.values():
                conn.close()
        self._local = threading.local()


class _Checkpointer:
    """Copies the WAL into the database file from a thread of its own, so that the copy and
    its fsyncs do not stall a request: left to the writes (SQLite's default), every few
    hundred issuances one of them waited for it. One per process; it reads no data."""

    def __init__(self, path: Path) -> None:
        self.pid = os.getpid()
        self.checkpoints = 0  # completed, for tests and curiosity
        self._path = path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepca-sqlite-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=BUSY_SECONDS)
        except sqlite3.Error as exc:
            log.warning("cannot open %s to checkpoint it (writes will): %s", self._path, exc)
            return
        try:
            while not self._stopping.wait(CHECKPOINT_SECONDS):
                try:
                    # PASSIVE: copies what no reader still needs, never waits for a writer
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    log.warning("checkpoint of %s failed (it is tried again): %s",
                                self._path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(BUSY_SECONDS)


def _take_write_lock(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, tried again at short intervals while another process writes.
    SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, while a write here holds
    the lock for about 0.1 ms: with two workers, the one that lost the race would sit idle,
    with every request on its connections, ten times longer than it needs to wait."""
    def begin() -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False
        return True

    if not _retried(begin, first=FIRST_RETRY_SECONDS, last=LAST_RETRY_SECONDS):
        conn.execute("BEGIN IMMEDIATE")  # once more: its "database is locked" is the answer


def _retried(attempt: Callable[[], bool], *, first: float, last: float) -> bool:
    """Call ``attempt`` until it succeeds (True) or ``BUSY_SECONDS`` have passed (False),
    sleeping ``first`` seconds between calls, twice as long each time up to ``last``."""
    deadline = monotonic() + BUSY_SECONDS
    delay = first
    while not attempt():
        if monotonic() > deadline:
            return False
        sleep(delay)
        delay = min(2 * delay, last)
    return True


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
