"""The SQLite store against the store contracts, plus what only a file-backed store promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import stepca_store_sqlite
from stepca.errors import TokenAlreadyUsed
from stepca.testing.contracts import StoreContract
from stepca_store_sqlite import SQLiteStore


class TestSQLiteStoreContract(StoreContract):
    plugin = stepca_store_sqlite

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        store = SQLiteStore.from_config({"type": "sqlite",
                                         "dataSource": str(tmp_path / "db" / "stepca.db")},
                                        steppath=tmp_path)
        yield store
        store.close()


def test_spent_tokens_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db" / "stepca.db"
    first = SQLiteStore(path)
    first.spend_token("jti-1")
    first.close()
    second = SQLiteStore(path)
    with pytest.raises(TokenAlreadyUsed):
        second.spend_token("jti-1")
    second.close()


def test_two_handles_on_one_file_share_spent_tokens(tmp_path: Path) -> None:
    # what two gunicorn workers do: separate connections, one database
    path = tmp_path / "stepca.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    a.spend_token("jti-2")
    with pytest.raises(TokenAlreadyUsed):
        b.spend_token("jti-2")
    a.close()
    b.close()


def test_relative_data_source_and_folder(tmp_path: Path) -> None:
    relative = SQLiteStore.from_config({"dataSource": "db/ca.sqlite"}, steppath=tmp_path)
    assert relative.path == tmp_path / "db" / "ca.sqlite"
    relative.close()
    (tmp_path / "folder").mkdir()
    folder = SQLiteStore.from_config({"dataSource": str(tmp_path / "folder")}, steppath=tmp_path)
    assert folder.path == tmp_path / "folder" / "stepca.db"
    folder.close()


def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db" / "stepca.db")
    store.spend_token("jti-3")
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.parent.stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()



def test_a_database_from_before_the_revocation_mark_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "stepca.db"
    with sqlite3.connect(path) as conn:  # x509_crl as earlier versions created it
        conn.execute("CREATE TABLE x509_crl (number INTEGER PRIMARY KEY, der BLOB NOT NULL, "
                     "this_update INTEGER NOT NULL, next_update INTEGER NOT NULL)")
        conn.execute("INSERT INTO x509_crl VALUES (7, x'3000', 1700000000, 1700086400)")
    conn.close()
    store = SQLiteStore(path)
    old = store.current_crl()
    assert old is not None and old.number == 7 and old.revocation_mark is None
    assert store.next_crl(lambda number: replace(old, number=number, revocation_mark=3)) \
        == store.current_crl()
    assert store.current_crl().revocation_mark == 3
    store.close()


class SynchronousProbe(SQLiteStore):
    """Reads back, inside each transaction that spends a token id, the synchronous level its
    COMMIT will run with (0 OFF, 1 NORMAL, 2 FULL), and records the statements sent."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.levels: list[int] = []
        self.statements: list[str] = []
        self._connection(writer=True).set_trace_callback(self.statements.append)

    def _spend(self, conn: sqlite3.Connection, token_id: str,  # type: ignore[override]
               expires_at: datetime | None = None) -> None:
        self.levels.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        super()._spend(conn, token_id, expires_at)


def test_a_revocation_commits_with_full_durability(tmp_path: Path) -> None:
    from stepca.store import AlreadyRevoked
    from stepca.testing.contracts import _leaf, _revocation

    store = SynchronousProbe(tmp_path / "stepca.db")
    cert = _leaf()
    store.store_certificate(cert, provisioner=None, token_id="sign-1")
    store.statements.clear()
    store.revoke(_revocation(cert.serial_number, token_id="revoke-1"))
    with pytest.raises(AlreadyRevoked):
        store.revoke(_revocation(cert.serial_number, token_id="revoke-2"))
    store.store_certificate(_leaf(), provisioner=None, token_id="sign-2")
    # issuance NORMAL, both revocations FULL (the refused one rolled back), issuance NORMAL
    assert store.levels == [1, 2, 2, 1]
    revoke = store.statements[:store.statements.index("COMMIT") + 2]
    assert revoke[:2] == ["PRAGMA synchronous=FULL", "BEGIN IMMEDIATE"]
    assert revoke[-2:] == ["COMMIT", "PRAGMA synchronous=NORMAL"]
    assert "PRAGMA synchronous=NORMAL" not in revoke[:-1]
    assert store._connection(writer=True).execute("PRAGMA synchronous").fetchone()[0] == 1
    store.close()


def test_a_crl_is_built_without_holding_the_write_lock(tmp_path: Path) -> None:
    """A CRL of 100,000 revocations takes a second and more to build: the issuances and
    revocations of every process must not wait for it, only for its insert."""
    from stepca.store import StoredCRL

    path = tmp_path / "stepca.db"
    store = SQLiteStore(path)
    moment = datetime(2026, 12, 6)

    def build(number: int) -> StoredCRL:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)  # waits for nothing
        try:
            other.execute("BEGIN IMMEDIATE")  # as every issuance's transaction begins
            other.execute("ROLLBACK")
        finally:
            other.close()
        return StoredCRL(number, b"crl", moment, moment, None)

    try:
        assert store.next_crl(build).number == 1
        assert store.next_crl(build).number == 2
        assert store.current_crl().number == 2
        lock = Path(f"{path}-crl.lock")
        assert lock.stat().st_mode & 0o777 == 0o600
    finally:
        store.close()
