"""Schema versions: a database of an earlier release is migrated in place and answers as before;
one from a newer release is refused; a restart migrates nothing twice."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from stepca.config import ConfigError
from stepca.errors import TokenAlreadyUsed
from stepca.sqlstore import LATEST_VERSION, SQLITE, Migration, SchemaTooNew, migrate
from stepca.store import ProvisionerRef, Purged, RevocationInfo
from stepca.testing.contracts import _leaf
from stepca.x509util import certificate_der
from stepca_store_sqlite import SQLiteStore

# The schema stepca 0.1 created, before schema versions, exactly as its store wrote it.
SCHEMA_0_1 = """
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
REF = ProvisionerRef(id="admin:kid-1", name="admin", type="JWK")


def _old_database(path: Path) -> dict[str, Any]:
    """A stepca 0.1 database holding a certificate, spent ids, a revocation and a CRL, written
    with that release's statements."""
    now = int(datetime.now(UTC).timestamp())
    issued, revoked = _leaf(), _leaf()
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_0_1)
        for cert in (issued, revoked):
            conn.execute("INSERT INTO x509_certs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (str(cert.serial_number), certificate_der(cert), REF.id, REF.name,
                          REF.type, int(cert.not_valid_before_utc.timestamp()),
                          int(cert.not_valid_after_utc.timestamp()), now))
        for token_id in ("sign-jti", "revoke-jti"):
            conn.execute("INSERT INTO used_ott (id, used_at) VALUES (?, ?)", (token_id, now))
        conn.execute("INSERT INTO revoked_x509_certs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (str(revoked.serial_number), REF.id, 1, "key compromise", now,
                      int(revoked.not_valid_after_utc.timestamp()), "revoke-jti", 0))
        conn.execute("INSERT INTO x509_crl (number, der, this_update, next_update, "
                     "revocation_mark) VALUES (?, ?, ?, ?, ?)",
                     (4, b"0\x03\x02\x01\x04", now, now + 86400, 1))
    conn.close()
    return {"issued": issued, "revoked": revoked, "now": now}


def _version(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM stepca_schema")]
    conn.close()
    return versions


def test_a_database_from_before_schema_versions_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "stepca.db"
    old = _old_database(path)
    store = SQLiteStore(path)
    assert store.schema_version == LATEST_VERSION == 3
    assert _version(path) == [LATEST_VERSION]
    for cert in (old["issued"], old["revoked"]):
        assert store.get_certificate(cert.serial_number) == (cert, REF)
    for token_id in ("sign-jti", "revoke-jti"):
        with pytest.raises(TokenAlreadyUsed):
            store.spend_token(token_id)
    serial = old["revoked"].serial_number
    assert store.is_revoked(serial) and not store.is_revoked(old["issued"].serial_number)
    assert store.revoked_certificates() == [RevocationInfo(
        serial, REF.id, 1, "key compromise", datetime.fromtimestamp(old["now"], UTC),
        old["revoked"].not_valid_after_utc, "revoke-jti", False)]
    assert store.revocation_mark() == 1
    crl = store.current_crl()
    assert crl is not None and (crl.number, crl.der, crl.revocation_mark) == \
        (4, b"0\x03\x02\x01\x04", 1)
    # ids spent before their expiry was recorded are kept for ever: purging cannot know
    later = datetime.now(UTC) + timedelta(days=3650)
    assert store.purge(token_ids_expired_before=later) == Purged()
    with pytest.raises(TokenAlreadyUsed):
        store.spend_token("sign-jti")
    # and new writes use the new column
    store.spend_token("new-jti", token_expires_at=datetime.now(UTC) - timedelta(hours=1))
    assert store.purge(token_ids_expired_before=datetime.now(UTC)) == Purged(token_ids=1)
    store.close()


def test_a_restart_migrates_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "stepca.db"
    _old_database(path)
    SQLiteStore(path).close()
    statements: list[str] = []

    class Traced(SQLiteStore):
        def _connection(self, *, writer: bool = False) -> sqlite3.Connection:
            conn = super()._connection(writer=writer)
            conn.set_trace_callback(statements.append)
            return conn

    again = Traced(path)
    assert again.schema_version == LATEST_VERSION and _version(path) == [LATEST_VERSION]
    changes = [s for s in statements if s.split()[0].upper() in ("ALTER", "INSERT", "DELETE")
               or s.upper().startswith("CREATE INDEX")]
    assert changes == []
    again.close()


def test_a_database_at_version_1_gets_only_the_newer_migrations(tmp_path: Path) -> None:
    path = tmp_path / "stepca.db"
    _old_database(path)
    with sqlite3.connect(path) as conn:  # as if a release with only migration 1 had opened it
        conn.execute("CREATE TABLE stepca_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO stepca_schema VALUES (1)")
    conn.close()
    store = SQLiteStore(path)
    assert _version(path) == [LATEST_VERSION]
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(used_ott)")}
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(used_ott)")}
    conn.close()
    assert "expires_at" in columns and "used_ott_expires_at" in indexes
    store.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db" / "stepca.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE stepca_schema SET version = 99")
        conn.execute("INSERT INTO used_ott (id, used_at) VALUES ('newer', 0)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew) as refused:
        SQLiteStore.from_config({"type": "sqlite", "dataSource": str(path)}, steppath=tmp_path)
    assert isinstance(refused.value, ConfigError)  # step-ca prints it and does not start
    message = str(refused.value)
    assert str(path) in message and "schema version 99" in message
    assert f"at most {LATEST_VERSION}" in message
    assert _version(path) == [99]
    assert path.read_bytes() == before


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "stepca.db"
    conn = sqlite3.connect(path, isolation_level=None)

    @contextmanager
    def transaction() -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    good = Migration(1, "a table", ("CREATE TABLE kept (x {integer})",))
    broken = Migration(2, "a table, then a mistake", ("CREATE TABLE lost (x {integer})",
                                                        "ALTER TABLE nowhere ADD COLUMN y"))
    assert migrate(transaction, SQLITE, where="test", migrations=(good,)) == 1
    with pytest.raises(sqlite3.OperationalError):
        migrate(transaction, SQLITE, where="test", migrations=(good, broken))
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"stepca_schema", "kept"}
    assert [row[0] for row in conn.execute("SELECT version FROM stepca_schema")] == [1]
    conn.close()


def test_migrations_are_numbered_in_order() -> None:
    from stepca.sqlstore import MIGRATIONS

    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
