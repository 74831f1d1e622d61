"""The PostgreSQL store on a real PostgreSQL (stepca.testing.postgres): the store contracts,
start-up errors, and two instances (two pools) on one database acting as one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import count

import pytest

import stepca_store_postgresql
from stepca.errors import TokenAlreadyUsed
from stepca.store import StoreStartError
from stepca.testing.contracts import StoreContract, _leaf, _revocation
from stepca.testing.postgres import PostgresCluster, postgres_cluster
from stepca_store_postgresql import PostgreSQLStore

pytestmark = pytest.mark.e2e
_databases = count()


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def database(pg: PostgresCluster) -> Iterator[dict[str, str]]:
    """ca.json's ``db`` for a new, empty database."""
    name = f"test_{next(_databases)}"
    pg.psql(f'CREATE DATABASE "{name}"', database="postgres")
    yield {"type": "postgresql", "dataSource": pg.dsn, "database": name}
    pg.psql(f'DROP DATABASE "{name}" WITH (FORCE)', database="postgres")


def _open(config: dict[str, str], tmp_path) -> PostgreSQLStore:  # type: ignore[no-untyped-def]
    return PostgreSQLStore.from_config(config, steppath=tmp_path)


class TestPostgreSQLStoreContract(StoreContract):
    plugin = stepca_store_postgresql

    @pytest.fixture
    def store(self, database: dict[str, str], tmp_path) -> Iterator[PostgreSQLStore]:  # type: ignore[no-untyped-def]
        store = _open(database, tmp_path)
        yield store
        store.close()


@pytest.fixture
def two(database: dict[str, str], tmp_path) -> Iterator[tuple[PostgreSQLStore, PostgreSQLStore]]:  # type: ignore[no-untyped-def]
    """Two instances on one database, as two CA instances are: two pools."""
    a, b = _open(database, tmp_path), _open(database, tmp_path)
    yield a, b
    a.close()
    b.close()


def test_a_wrong_password_is_one_line_without_the_password(pg: PostgresCluster,
                                                          tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = "not-the-" + pg.password[:8]
    dsn = pg.dsn.replace(pg.password, wrong)
    with pytest.raises(StoreStartError) as raised:
        _open({"type": "postgresql", "dataSource": dsn, "database": pg.database}, tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert wrong not in message and pg.password not in message
    assert "password authentication failed" in message
    assert f"{pg.user}@127.0.0.1:{pg.port}/{pg.database}" in message


def test_nothing_listening_is_one_line_without_the_password(pg: PostgresCluster,
                                                           tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stepca.testing.postgres import _free_port

    port = _free_port()
    dsn = pg.dsn.replace(f":{pg.port}/", f":{port}/")
    with pytest.raises(StoreStartError) as raised:
        _open({"type": "postgresql", "dataSource": dsn, "database": pg.database}, tmp_path)
    message = str(raised.value)
    assert "\n" not in message and pg.password not in message
    assert f"127.0.0.1:{port}/{pg.database}" in message
    assert "refused" in message.lower()


def test_a_token_spent_at_two_instances_at_once_succeeds_once(
        two: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    for attempt in range(20):
        barrier = threading.Barrier(2, timeout=30)
        outcomes: list[str] = []
        certs = [_leaf(), _leaf()]

        def issue(store: PostgreSQLStore, cert, token: str = f"jti-{attempt}") -> None:  # type: ignore[no-untyped-def]
            barrier.wait()
            try:
                store.store_certificate(cert, provisioner=None, token_id=token)
                outcomes.append("issued")
            except TokenAlreadyUsed:
                outcomes.append("refused")

        threads = [threading.Thread(target=issue, args=(store, cert))
                   for store, cert in zip(two, certs, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes) == ["issued", "refused"]
        stored = [two[0].get_certificate(c.serial_number) for c in certs]
        assert sum(s is not None for s in stored) == 1  # the refused one wrote nothing


def test_a_revocation_at_one_instance_is_seen_at_the_other_at_once(
        two: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    a, b = two
    cert = _leaf()
    a.store_certificate(cert, provisioner=None, token_id="sign")
    assert not b.is_revoked(cert.serial_number)
    mark = b.revocation_mark()
    a.revoke(_revocation(cert.serial_number, token_id="revoke"))
    assert b.is_revoked(cert.serial_number)
    assert b.revocation_mark() == mark + 1 == a.revocation_mark()
    assert b.revocation(cert.serial_number) is not None


def test_the_mark_counts_only_committed_revocations(
        two: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    from stepca.store import AlreadyRevoked

    a, b = two
    cert = _leaf()
    a.revoke(_revocation(cert.serial_number, token_id="first"))
    mark = a.revocation_mark()
    with pytest.raises(AlreadyRevoked):
        b.revoke(_revocation(cert.serial_number, token_id="second"))
    assert a.revocation_mark() == b.revocation_mark() == mark


def test_a_forked_process_builds_its_own_pool(database: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    store = _open(database, tmp_path)
    store.spend_token("parent")
    parent_pool = store._pool()
    pid = os.fork()
    if pid == 0:  # the child: its own pool, the parent's untouched
        code = 1
        try:
            try:
                store.spend_token("parent")
            except TokenAlreadyUsed:
                code = 0 if store._pool() is not parent_pool else 2
            store.spend_token("child")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(TokenAlreadyUsed):  # the parent's pool still works
        store.spend_token("child")
    store.close()


def _wait_until_one_waits_for_a_lock(admin, *, deadline: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Return once another backend of this database waits for a lock; fail after
    ``deadline`` seconds (it never does when nothing makes it wait)."""
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock' AND "
                            "pid <> pg_backend_pid()").fetchone()
        if row[0]:
            return
        time.sleep(0.02)
    pytest.fail(f"no backend waited for a lock within {deadline} s")


def test_a_renewal_waits_for_a_revocation_in_flight_and_is_refused(
        two: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    import psycopg

    from stepca.sqlstore import POSTGRESQL, Statements, revocation_row
    from stepca.store import CertificateRevoked
    from stepca_store_postgresql.store import BUMP_REVOCATION_MARK

    a, b = two
    old, new = _leaf(), _leaf()
    a.store_certificate(old, provisioner=None, token_id=None)
    outcome: list[object] = []

    def renew() -> None:
        try:
            b.store_renewed_certificate(new, renewed_from=old.serial_number, provisioner=None,
                                        token_id="renew")
            outcome.append("renewed")
        except CertificateRevoked as exc:
            outcome.append(exc)

    with psycopg.connect(a.conninfo) as revoking, \
            psycopg.connect(a.conninfo, autocommit=True) as admin:
        # what a.revoke does, held open between its statements and its COMMIT
        revoking.execute(BUMP_REVOCATION_MARK)
        revoking.execute(Statements.for_dialect(POSTGRESQL).insert_revocation,
                         revocation_row(_revocation(old.serial_number)))
        renewal = threading.Thread(target=renew)
        renewal.start()
        _wait_until_one_waits_for_a_lock(admin)
        revoking.commit()
        renewal.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], CertificateRevoked)
    assert b.get_certificate(new.serial_number) is None
    b.spend_token("renew")  # the refused renewal spent nothing


def test_one_instance_builds_the_crl_at_a_time_and_all_serve_the_newest(
        two: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    import psycopg

    from stepca.store import StoredCRL
    from stepca_store_postgresql.store import CRL_LOCK

    a, b = two
    now = datetime.now(UTC).replace(microsecond=0)
    template = StoredCRL(0, b"0\x00", now, now + timedelta(days=1), 0)

    def build(number: int) -> StoredCRL:
        return replace(template, number=number, der=bytes([number]))

    assert a.next_crl(build).number == 1
    built: list[StoredCRL] = []
    with psycopg.connect(a.conninfo) as other_builder, \
            psycopg.connect(a.conninfo, autocommit=True) as admin:
        other_builder.execute(CRL_LOCK)  # another instance builds
        builder = threading.Thread(target=lambda: built.append(b.next_crl(build)))
        builder.start()
        _wait_until_one_waits_for_a_lock(admin)
        other_builder.commit()
        builder.join(60)
    assert [crl.number for crl in built] == [2]
    assert a.current_crl() == b.current_crl() == built[0]
    assert a.next_crl(build).number == 3 and b.current_crl().der == bytes([3])


def test_a_database_at_version_2_gets_a_mark_counting_its_revocations(
        database: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from contextlib import contextmanager

    import psycopg

    from stepca.sqlstore import MIGRATIONS, POSTGRESQL, Statements, migrate, revocation_row

    store = None
    url = f"{database['dataSource']}{database['database']}"
    with psycopg.connect(url) as conn:  # as a release without migration 3 left it
        @contextmanager
        def transaction():  # type: ignore[no-untyped-def]
            with conn.transaction():
                yield conn
        assert migrate(transaction, POSTGRESQL, where="test", migrations=MIGRATIONS[:2]) == 2
        for _ in range(2):
            conn.execute(Statements.for_dialect(POSTGRESQL).insert_revocation,
                         revocation_row(_revocation(_leaf().serial_number)))
        conn.commit()
    try:
        store = _open(database, tmp_path)
        assert store.schema_version == 3 and store.revocation_mark() == 2
        store.revoke(_revocation(_leaf().serial_number))
        assert store.revocation_mark() == 3
    finally:
        if store is not None:
            store.close()


@pytest.mark.parametrize("source", ["password=s3cret host", "postgresql://u:s3cret@[bad/", ""])
def test_a_bad_data_source_is_refused_without_the_password(source: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreStartError, match="db.dataSource") as raised:
        _open({"type": "postgresql", "dataSource": source, "database": "stepca"}, tmp_path)
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_database_is_one_line(pg: PostgresCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreStartError) as raised:
        _open({"type": "postgresql", "dataSource": pg.dsn, "database": "nowhere"}, tmp_path)
    message = str(raised.value)
    assert "\n" not in message and pg.password not in message
    assert 'database "nowhere" does not exist' in message


def test_while_the_database_is_down_every_call_is_store_unavailable_and_spends_nothing(
        database: dict[str, str], pg: PostgresCluster, tmp_path, monkeypatch,  # type: ignore[no-untyped-def]
        caplog) -> None:
    from stepca.store import StoreUnavailable
    from stepca_store_postgresql import store as store_module

    monkeypatch.setattr(store_module, "POOL_WAIT", 1.0)  # the wait for a connection, bounded
    store = _open(database, tmp_path)
    issued, later = _leaf(), _leaf()
    store.store_certificate(issued, provisioner=None, token_id="before")  # a pooled connection
    calls = {
        "store_certificate": lambda: store.store_certificate(later, provisioner=None,
                                                             token_id="during"),
        "spend_token": lambda: store.spend_token("spent-during"),
        "get_certificate": lambda: store.get_certificate(issued.serial_number),
        "is_revoked": lambda: store.is_revoked(issued.serial_number),
        "revoke": lambda: store.revoke(_revocation(issued.serial_number, token_id="revoke")),
        "revocation_mark": store.revocation_mark,
        "current_crl": store.current_crl,
    }
    pg.stop()
    try:
        for name, call in calls.items():
            with pytest.raises(StoreUnavailable) as raised:
                call()
            assert raised.value.status == 503, name
            assert raised.value.message == ("The certificate authority is temporarily "
                                            "unavailable: its database cannot be reached; try "
                                            "again shortly."), name
    finally:
        pg.start()
    assert "is unavailable" in caplog.text and pg.password not in caplog.text
    # the same pool serves again once it has reconnected, and nothing the failed calls tried
    # was written
    deadline = time.monotonic() + store_module.RECONNECT_FOR + 30
    while True:
        try:
            store.store_certificate(later, provisioner=None, token_id="during")
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the pool did not reconnect"
    store.spend_token("spent-during")
    assert not store.is_revoked(issued.serial_number)
    store.revoke(_revocation(issued.serial_number, token_id="revoke"))
    assert store.is_revoked(issued.serial_number)
    store.close()
