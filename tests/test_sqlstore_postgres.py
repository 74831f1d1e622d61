"""The SQL both stores share (stepca.sqlstore) on a real PostgreSQL: the migrations apply once,
also when two instances start together; a newer database is refused; the statements and row
conversions round-trip; the purge deletes in batches exactly what it should."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from stepca.sqlstore import (LATEST_VERSION, POSTGRESQL, SchemaTooNew, Statements,
                             certificate_from_row, certificate_row, crl_from_row, crl_row,
                             migrate, purge_in_batches, revocation_from_row, revocation_row,
                             seconds)
from stepca.store import ProvisionerRef, RevocationInfo, StoredCRL
from stepca.testing.contracts import _leaf
from stepca.testing.postgres import PostgresCluster, postgres_cluster

pytestmark = pytest.mark.e2e
SQL = Statements.for_dialect(POSTGRESQL)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def database(pg: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.node.name.replace("test_", "")[:50]
    pg.psql(f'CREATE DATABASE "{name}"', database="postgres")
    yield pg.url(name)
    pg.psql(f'DROP DATABASE "{name}" WITH (FORCE)', database="postgres")


@contextmanager
def connected(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        yield conn


def transactions(conn: psycopg.Connection):  # type: ignore[no-untyped-def]
    @contextmanager
    def transaction() -> Iterator[psycopg.Connection]:
        with conn.transaction():
            yield conn
    return transaction


def test_the_migrations_apply_once(database: str) -> None:
    with connected(database) as conn:
        assert migrate(transactions(conn), POSTGRESQL, where="test") == LATEST_VERSION
        assert migrate(transactions(conn), POSTGRESQL, where="test") == LATEST_VERSION
        assert conn.execute("SELECT version FROM stepca_schema").fetchall() == \
            [(LATEST_VERSION,)]
        tables = {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables == {"stepca_schema", "x509_certs", "used_ott", "revoked_x509_certs",
                          "x509_crl", "revocation_counter"}
        indexes = {row[0] for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert {"used_ott_expires_at", "x509_certs_not_after"} <= indexes


def test_instances_starting_together_migrate_once(database: str) -> None:
    barrier = threading.Barrier(4, timeout=30)
    outcomes: list[object] = []

    def start() -> None:
        with connected(database) as conn:
            barrier.wait()
            try:
                outcomes.append(migrate(transactions(conn), POSTGRESQL, where="test"))
            except Exception as exc:  # reported below
                outcomes.append(exc)

    workers = [threading.Thread(target=start) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert outcomes == [LATEST_VERSION] * 4
    with connected(database) as conn:
        assert conn.execute("SELECT version FROM stepca_schema").fetchall() == \
            [(LATEST_VERSION,)]


def test_a_newer_database_is_refused(database: str) -> None:
    with connected(database) as conn:
        migrate(transactions(conn), POSTGRESQL, where="test")
        conn.execute("UPDATE stepca_schema SET version = %s", (LATEST_VERSION + 1,))
        with pytest.raises(SchemaTooNew, match=f"schema version {LATEST_VERSION + 1}"):
            migrate(transactions(conn), POSTGRESQL, where="postgresql://127.0.0.1/x")
        assert conn.execute("SELECT version FROM stepca_schema").fetchall() == \
            [(LATEST_VERSION + 1,)]


def test_the_statements_round_trip_and_the_purge_is_exact(database: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ref = ProvisionerRef("admin:kid", "admin", "JWK")
    serial = (1 << 158) | 12345  # 159 bits: decimal text
    old, cert = _leaf(not_after=now - timedelta(days=100)), _leaf(serial)
    with connected(database) as conn:
        transaction = transactions(conn)
        migrate(transaction, POSTGRESQL, where="test")
        with transaction():
            for stored in (old, cert):
                conn.execute(SQL.insert_certificate, certificate_row(stored, ref, now))
        row = conn.execute(SQL.select_certificate, (str(serial),)).fetchone()
        assert row is not None and certificate_from_row(row) == (cert, ref)

        for i in range(5):
            conn.execute(SQL.spend_token, (f"expired-{i}", seconds(now),
                                           seconds(now - timedelta(hours=2))))
        conn.execute(SQL.spend_token, ("live", seconds(now), seconds(now + timedelta(hours=1))))
        conn.execute(SQL.spend_token, ("first-use", seconds(now), None))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(SQL.spend_token, ("live", seconds(now), None))
        assert purge_in_batches(transaction, SQL.purge_token_ids, now, batch=2) == 5
        assert {r[0] for r in conn.execute("SELECT id FROM used_ott")} == {"live", "first-use"}
        assert purge_in_batches(transaction, SQL.purge_certificates,
                                now - timedelta(days=90)) == 1
        assert conn.execute(SQL.select_certificate,
                            (str(old.serial_number),)).fetchone() is None

        info = RevocationInfo(serial, ref.id, 1, "key compromise", now, now + timedelta(hours=1),
                              "revoke-jti", True)
        conn.execute(SQL.insert_revocation, revocation_row(info))
        assert conn.execute(SQL.is_revoked, (str(serial),)).fetchone() == (1,)
        assert [revocation_from_row(r) for r in conn.execute(SQL.select_revocations)] == [info]
        one = conn.execute(SQL.select_revocation, (str(serial),)).fetchone()
        assert revocation_from_row(one) == info

        crl = StoredCRL(3, b"0\x03\x02\x01\x03", now, now + timedelta(days=1), 7)
        conn.execute(SQL.insert_crl, crl_row(crl))
        assert conn.execute(SQL.last_crl_number).fetchone() == (3,)
        assert crl_from_row(conn.execute(SQL.current_crl).fetchone()) == crl
