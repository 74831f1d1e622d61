"""Issued certificates, spent token ids, revocations and CRLs in one PostgreSQL database that
several CA instances share.

The schema, its migrations, the statements and every read and write are
``stepca.sqlstore``'s, shared with the SQLite store; this module brings the connection pool and
the locks. Every transaction runs at READ COMMITTED, PostgreSQL's default; what must not
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from stepca.sqlstore import POSTGRESQL, SQLStore, migrate
from stepca.store import StoreStartError

CONNECT_TIMEOUT = 10  # seconds; libpq's connect_timeout
POOL_WAIT = 10.0  # seconds a request waits for a pooled connection, then answers 503
POOL_SIZE = 10  # per process
# The pool retries a lost connection with a doubling delay; giving up after this bounds that
# delay, so once the database is back the next request's fresh attempt finds it within seconds
RECONNECT_FOR = 10.0
CRL_LOCK = "SELECT pg_advisory_xact_lock(7301935200116)"  # any fixed key but migrate's
BUMP_REVOCATION_MARK = "UPDATE revocation_counter SET mark = mark + 1"
SHARE_REVOCATION_MARK = "SELECT mark FROM revocation_counter FOR SHARE"
READ_REVOCATION_MARK = "SELECT mark FROM revocation_counter"


class PostgreSQLStore(SQLStore):
    type = "postgresql"
    shared_between_processes = True
    dialect = POSTGRESQL
    token_id_taken = (pg_errors.UniqueViolation,)
    # a server restarting or gone, a dropped connection, no pooled connection within
    # POOL_WAIT (psycopg_pool.PoolTimeout is one): the request answers 503
    unavailable = (psycopg.OperationalError,)

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
                                             reconnect_timeout=RECONNECT_FOR,
                                             check=ConnectionPool.check_connection,
                                             name=f"stepca {self.where}")
                self._pool_pid = os.getpid()
            return self._pool_

    @contextmanager
    def _begin(self, *, durable: bool = False) -> Iterator[psycopg.Connection]:
        """One transaction on a pooled connection: committed when the block ends, rolled back
        when it raises. Every commit is durable: PostgreSQL's COMMIT waits for the WAL flush
        (``synchronous_commit``'s default). A connection the server dropped is replaced."""
        with self._pool().connection() as conn:
            yield conn

    def _before_renewal(self, conn: psycopg.Connection) -> None:
        # waits for a revoke in flight; the check after it (a new READ COMMITTED snapshot)
        # sees that revocation, and a later revoke waits for this commit
        conn.execute(SHARE_REVOCATION_MARK)

    def _before_revocation(self, conn: psycopg.Connection) -> None:
        conn.execute(BUMP_REVOCATION_MARK)  # from here, revocations run one at a time

    def _before_crl(self, conn: psycopg.Connection) -> None:
        conn.execute(CRL_LOCK)  # one builder across instances; released at commit

    def _unavailable_reason(self, exc: BaseException) -> str:
        return _reason(exc, self.conninfo)

    def revocation_mark(self) -> int:
        with self._reading() as conn:
            row = conn.execute(READ_REVOCATION_MARK).fetchone()
        return int(row[0]) if row else 0

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
