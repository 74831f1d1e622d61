"""What the SQL stores share (plugin API): the schema, its versions and migrations, the
statements, the retention purge, and ``SQLStore``, every read and write of both stores.

stepca-store-sqlite and stepca-store-postgresql import this module rather than each other. A
store subclasses ``SQLStore`` and brings its DB-API connections, a ``Dialect``, a way to run one
transaction and its driver's errors; this module brings the SQL. Statements are templates: ``{p}`` is a parameter, ``{blob}`` and ``{integer}``
the dialect's types for bytes and 64-bit integers (Unix seconds).

The schema version is the one row of ``stepca_schema``. ``migrate`` applies, in one
transaction, the migrations newer than it, and refuses a database newer than this code: a
downgraded CA must not guess at a schema it does not know.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography import x509

from stepca.errors import TokenAlreadyUsed
from stepca.store import (AlreadyRevoked, CertificateRevoked, CertificateStore, ProvisionerRef,
                          Purged, RevocationInfo, RevocationStore, StoredCRL, StoreStartError,
                          StoreUnavailable)
from stepca.x509util import certificate_der

log = logging.getLogger("stepca.store")

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "POSTGRESQL",
    "SQLITE",
    "Dialect",
    "Migration",
    "SQLStore",
    "SchemaTooNew",
    "Statements",
    "certificate_from_row",
    "certificate_row",
    "crl_from_row",
    "crl_row",
    "migrate",
    "purge_in_batches",
    "revocation_from_row",
    "revocation_row",
    "seconds",
]


@dataclass(frozen=True)
class Dialect:
    name: str
    param: str
    blob: str
    integer: str
    lock: str | None = None
    """A statement that serialises ``migrate`` between processes, run first in its
    transaction; None where the transaction itself takes the write lock (SQLite's ``BEGIN
    IMMEDIATE``)."""

    def sql(self, template: str) -> str:
        return template.format(p=self.param, blob=self.blob, integer=self.integer)


SQLITE = Dialect("sqlite", "?", "BLOB", "INTEGER")
POSTGRESQL = Dialect("postgresql", "%s", "BYTEA", "BIGINT",
                     lock="SELECT pg_advisory_xact_lock(7301935200115)")  # any fixed key


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: tuple[str, ...] = ()
    """Templates run on every dialect."""
    dialect_statements: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Statements for one dialect only (by ``Dialect.name``), run after the shared ones."""

    def for_dialect(self, dialect: Dialect) -> Iterator[str]:
        for template in (*self.statements, *self.dialect_statements.get(dialect.name, ())):
            yield dialect.sql(template)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the tables of stepca 0.1, made before schema versions existed", (
        """CREATE TABLE IF NOT EXISTS x509_certs (
            serial TEXT PRIMARY KEY,
            der {blob} NOT NULL,
            provisioner_id TEXT,
            provisioner_name TEXT,
            provisioner_type TEXT,
            not_before {integer} NOT NULL,
            not_after {integer} NOT NULL,
            issued_at {integer} NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS used_ott (
            id TEXT PRIMARY KEY,
            used_at {integer} NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS revoked_x509_certs (
            serial TEXT PRIMARY KEY,
            provisioner_id TEXT NOT NULL,
            reason_code INTEGER NOT NULL,
            reason TEXT NOT NULL,
            revoked_at {integer} NOT NULL,
            expires_at {integer},
            token_id TEXT,
            mtls INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE IF NOT EXISTS x509_crl (
            number {integer} PRIMARY KEY,
            der {blob} NOT NULL,
            this_update {integer} NOT NULL,
            next_update {integer} NOT NULL,
            revocation_mark {integer})""",
    )),
    Migration(2, "spent token ids keep when their token expires, for the retention purge", (
        # NULL (ids spent before, and ids that outlive their token): kept for ever
        "ALTER TABLE used_ott ADD COLUMN expires_at {integer}",
        "CREATE INDEX used_ott_expires_at ON used_ott (expires_at)",
        "CREATE INDEX x509_certs_not_after ON x509_certs (not_after)",
    )),
    Migration(3, "PostgreSQL: a revocation counter that follows commit order", (), {
        # revoke increments the one row in its transaction: the row lock orders revocations
        # as they commit (a sequence or identity column hands out numbers at insert time,
        # not commit time), and renewals share-lock it to exclude a concurrent revoke
        "postgresql": (
            "CREATE TABLE revocation_counter (mark {integer} NOT NULL)",
            "INSERT INTO revocation_counter (mark) SELECT COUNT(*) FROM revoked_x509_certs",
        ),
    }),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(StoreStartError):
    """The database was written by a newer stepca than this one."""


def migrate(transaction: Callable[[], AbstractContextManager[Any]], dialect: Dialect, *,
            where: str, migrations: tuple[Migration, ...] = MIGRATIONS,
            adopt_unversioned: Callable[[Any], None] | None = None) -> int:
    """Bring the database to the newest schema in one transaction; return its version.

    ``transaction()`` yields a connection inside a transaction that commits on success and
    rolls back on an exception. ``where`` names the database in errors (a path, a host; never
    a password). ``adopt_unversioned(conn)`` runs on a database with no version yet, before
    the migrations, to fix what earlier code made without one. Raises ``SchemaTooNew``."""
    latest = migrations[-1].version
    with transaction() as conn:
        if dialect.lock:
            conn.execute(dialect.lock)
        conn.execute(dialect.sql("CREATE TABLE IF NOT EXISTS stepca_schema "
                                 "(version {integer} NOT NULL)"))
        row = conn.execute("SELECT MAX(version) FROM stepca_schema").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current > latest:
            raise SchemaTooNew(
                f"the database {where} has schema version {current}, newer than this stepca "
                f"knows (at most {latest}): it was written by a newer release; run that "
                "release, or restore a backup made for this one")
        if current == latest:
            return current
        if current == 0 and adopt_unversioned is not None:
            adopt_unversioned(conn)
        for migration in migrations:
            if migration.version > current:
                for statement in migration.for_dialect(dialect):
                    conn.execute(statement)
        conn.execute("DELETE FROM stepca_schema")
        conn.execute(dialect.sql("INSERT INTO stepca_schema (version) VALUES ({p})"), (latest,))
    return latest


@dataclass(frozen=True)
class Statements:
    """The statements both SQL stores run, in one dialect."""

    insert_certificate: str
    select_certificate: str
    spend_token: str
    is_revoked: str
    insert_revocation: str
    select_revocations: str
    select_revocation: str
    current_crl: str
    last_crl_number: str
    insert_crl: str
    delete_old_crls: str
    purge_token_ids: str
    purge_certificates: str

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> Statements:
        revocation_columns = ("SELECT serial, provisioner_id, reason_code, reason, revoked_at, "
                              "expires_at, token_id, mtls FROM revoked_x509_certs")
        templates = {
            "insert_certificate": "INSERT INTO x509_certs (serial, der, provisioner_id, "
                                  "provisioner_name, provisioner_type, not_before, not_after, "
                                  "issued_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            "select_certificate": "SELECT der, provisioner_id, provisioner_name, "
                                  "provisioner_type FROM x509_certs WHERE serial = {p}",
            "spend_token": "INSERT INTO used_ott (id, used_at, expires_at) VALUES ({p}, {p}, {p})",
            "is_revoked": "SELECT 1 FROM revoked_x509_certs WHERE serial = {p}",
            "insert_revocation": "INSERT INTO revoked_x509_certs (serial, provisioner_id, "
                                 "reason_code, reason, revoked_at, expires_at, token_id, mtls) "
                                 "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            "select_revocations": f"{revocation_columns} ORDER BY revoked_at",
            "select_revocation": f"{revocation_columns} WHERE serial = {{p}}",
            "current_crl": "SELECT number, der, this_update, next_update, revocation_mark "
                           "FROM x509_crl ORDER BY number DESC LIMIT 1",
            "last_crl_number": "SELECT MAX(number) FROM x509_crl",
            "insert_crl": "INSERT INTO x509_crl (number, der, this_update, next_update, "
                          "revocation_mark) VALUES ({p}, {p}, {p}, {p}, {p})",
            "delete_old_crls": "DELETE FROM x509_crl WHERE number < {p}",
            # in batches: one short transaction each, so issuance never waits long on a purge
            "purge_token_ids": "DELETE FROM used_ott WHERE id IN (SELECT id FROM used_ott "
                               "WHERE expires_at < {p} LIMIT {p})",
            "purge_certificates": "DELETE FROM x509_certs WHERE serial IN (SELECT serial FROM "
                                  "x509_certs WHERE not_after < {p} LIMIT {p})",
        }
        return cls(**{name: dialect.sql(sql) for name, sql in templates.items()})


PURGE_BATCH = 1000


def purge_in_batches(transaction: Callable[[], AbstractContextManager[Any]], statement: str,
                     before: datetime, *, batch: int = PURGE_BATCH) -> int:
    """Run a ``purge_*`` statement with the cutoff ``before`` until it deletes less than a
    batch, one transaction per batch; return how many rows it deleted."""
    deleted = 0
    while True:
        with transaction() as conn:
            count = conn.execute(statement, (int(before.timestamp()), batch)).rowcount
        deleted += max(count, 0)
        if count < batch:
            return deleted


class SQLStore(CertificateStore, RevocationStore):
    """Both interfaces on the shared schema. A subclass sets ``dialect``, ``token_id_taken``
    (its driver's unique-violation error) and ``unavailable`` (its driver's errors for a
    database it cannot reach now), and implements ``_begin``; the ``_before_*`` hooks add the
    locks a database shared by several hosts needs."""

    dialect: ClassVar[Dialect]
    SQL: ClassVar[Statements]
    """The statements in ``dialect``, made once per subclass that sets it."""
    token_id_taken: ClassVar[tuple[type[BaseException], ...]]
    unavailable: ClassVar[tuple[type[BaseException], ...]] = ()
    where: str
    """The database in messages: a path, or user@host:port/name; never a password."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "dialect" in cls.__dict__:
            cls.SQL = Statements.for_dialect(cls.dialect)

    @abc.abstractmethod
    def _begin(self, *, durable: bool = False) -> AbstractContextManager[Any]:
        """One transaction: yield a connection, commit when the block ends, roll back when it
        raises. ``durable``: the commit survives a power loss, not only a crashed process."""

    def _read(self) -> AbstractContextManager[Any]:
        """A connection for one read; a transaction unless the store has a cheaper way."""
        return self._begin()

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[Any]:
        with self._translated(), self._begin(durable=durable) as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._translated(), self._read() as conn:
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self.unavailable as exc:
            log.warning("the database %s is unavailable: %s", self.where,
                        self._unavailable_reason(exc))
            raise StoreUnavailable() from None

    def _unavailable_reason(self, exc: BaseException) -> str:
        """The driver's message on one line, for the log; override to cut out secrets."""
        return " ".join(str(exc).split()) or type(exc).__name__

    def _before_renewal(self, conn: Any) -> None:
        """Run first in a renewal's transaction: exclude a revocation committing meanwhile."""

    def _before_revocation(self, conn: Any) -> None:
        """Run in a revocation's transaction before its check: order revocations."""

    def _before_crl(self, conn: Any) -> None:
        """Run first in ``next_crl``'s transaction: one builder at a time."""

    def _spend(self, conn: Any, token_id: str, expires_at: datetime | None) -> None:
        try:
            conn.execute(self.SQL.spend_token, (token_id, seconds(datetime.now(UTC)),
                                                seconds(expires_at)))
        except self.token_id_taken:
            raise TokenAlreadyUsed() from None

    def _is_revoked(self, conn: Any, serial: int) -> bool:
        return conn.execute(self.SQL.is_revoked, (str(serial),)).fetchone() is not None

    def store_certificate(self, certificate: x509.Certificate, *,
                          provisioner: ProvisionerRef | None, token_id: str | None,
                          token_expires_at: datetime | None = None) -> None:
        row = certificate_row(certificate, provisioner, datetime.now(UTC))
        with self._transaction() as conn:
            if token_id is not None:
                self._spend(conn, token_id, token_expires_at)
            conn.execute(self.SQL.insert_certificate, row)

    def store_renewed_certificate(self, certificate: x509.Certificate, *, renewed_from: int,
                                  provisioner: ProvisionerRef | None,
                                  token_id: str | None,
                                  token_expires_at: datetime | None = None) -> None:
        row = certificate_row(certificate, provisioner, datetime.now(UTC))
        with self._transaction() as conn:
            self._before_renewal(conn)
            if self._is_revoked(conn, renewed_from):
                raise CertificateRevoked()
            if token_id is not None:
                self._spend(conn, token_id, token_expires_at)
            conn.execute(self.SQL.insert_certificate, row)

    def spend_token(self, token_id: str, *, token_expires_at: datetime | None = None) -> None:
        with self._transaction() as conn:
            self._spend(conn, token_id, token_expires_at)

    def purge(self, *, token_ids_expired_before: datetime,
              certificates_expired_before: datetime | None = None) -> Purged:
        tokens = purge_in_batches(self._transaction, self.SQL.purge_token_ids,
                                  token_ids_expired_before)
        certificates = 0 if certificates_expired_before is None else purge_in_batches(
            self._transaction, self.SQL.purge_certificates, certificates_expired_before)
        return Purged(token_ids=tokens, certificates=certificates)

    def get_certificate(self, serial: int) -> tuple[x509.Certificate, ProvisionerRef | None] | None:
        with self._reading() as conn:
            row = conn.execute(self.SQL.select_certificate, (str(serial),)).fetchone()
        return certificate_from_row(row) if row is not None else None

    def revoke(self, info: RevocationInfo, *, token_expires_at: datetime | None = None) -> None:
        # durable: a revocation the CA acknowledged must survive a power loss
        with self._transaction(durable=True) as conn:
            if info.token_id is not None:  # first: a replayed token is refused as a replay
                self._spend(conn, info.token_id, token_expires_at)
            self._before_revocation(conn)
            if self._is_revoked(conn, info.serial):
                raise AlreadyRevoked(info.serial)  # rolls everything above back
            conn.execute(self.SQL.insert_revocation, revocation_row(info))

    def is_revoked(self, serial: int) -> bool:
        with self._reading() as conn:
            return self._is_revoked(conn, serial)

    def revoked_certificates(self) -> list[RevocationInfo]:
        return self._revocations(self.SQL.select_revocations, ())

    def revocation(self, serial: int) -> RevocationInfo | None:
        found = self._revocations(self.SQL.select_revocation, (str(serial),))
        return found[0] if found else None

    def _revocations(self, statement: str, args: tuple[Any, ...]) -> list[RevocationInfo]:
        with self._reading() as conn:
            rows = conn.execute(statement, args).fetchall()
        return [revocation_from_row(row) for row in rows]

    def current_crl(self) -> StoredCRL | None:
        with self._reading() as conn:
            row = conn.execute(self.SQL.current_crl).fetchone()
        return crl_from_row(row) if row else None

    def next_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        with self._transaction() as conn:
            self._before_crl(conn)
            row = conn.execute(self.SQL.last_crl_number).fetchone()
            crl = build((row[0] or 0) + 1)
            self._keep_crl(conn, crl)
        return crl

    def _keep_crl(self, conn: Any, crl: StoredCRL) -> None:
        conn.execute(self.SQL.insert_crl, crl_row(crl))
        # Only the newest CRL is ever served; keep a short history for audits.
        conn.execute(self.SQL.delete_old_crls, (crl.number - 10,))


# -- rows: what the statements above write and read -------------------------------------------------

def seconds(moment: datetime | None) -> int | None:
    """Unix seconds, as every time column keeps them."""
    return int(moment.timestamp()) if moment is not None else None


def _moment(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def certificate_row(certificate: x509.Certificate, provisioner: ProvisionerRef | None,
                    issued_at: datetime) -> tuple[Any, ...]:
    """The parameters of ``insert_certificate``; the serial is decimal text (159 bits do not
    fit a 64-bit column)."""
    return (str(certificate.serial_number), certificate_der(certificate),
            provisioner.id if provisioner else None, provisioner.name if provisioner else None,
            provisioner.type if provisioner else None,
            seconds(certificate.not_valid_before_utc), seconds(certificate.not_valid_after_utc),
            seconds(issued_at))


def certificate_from_row(row: Sequence[Any]) -> tuple[x509.Certificate, ProvisionerRef | None]:
    """A row of ``select_certificate``."""
    ref = ProvisionerRef(row[1], row[2], row[3]) if row[1] is not None else None
    return x509.load_der_x509_certificate(bytes(row[0])), ref


def revocation_row(info: RevocationInfo) -> tuple[Any, ...]:
    """The parameters of ``insert_revocation``."""
    return (str(info.serial), info.provisioner_id, info.reason_code, info.reason,
            seconds(info.revoked_at), seconds(info.expires_at), info.token_id, int(info.mtls))


def revocation_from_row(row: Sequence[Any]) -> RevocationInfo:
    """A row of ``select_revocations`` or ``select_revocation``."""
    return RevocationInfo(int(row[0]), row[1], row[2], row[3],
                          datetime.fromtimestamp(row[4], UTC), _moment(row[5]), row[6],
                          bool(row[7]))


def crl_row(crl: StoredCRL) -> tuple[Any, ...]:
    """The parameters of ``insert_crl``."""
    return (crl.number, crl.der, seconds(crl.this_update), seconds(crl.next_update),
            crl.revocation_mark)


def crl_from_row(row: Sequence[Any]) -> StoredCRL:
    """A row of ``current_crl``."""
    return StoredCRL(int(row[0]), bytes(row[1]), datetime.fromtimestamp(row[2], UTC),
                     datetime.fromtimestamp(row[3], UTC), row[4])
