"""Waiting for the write lock another process holds: tried again at short intervals (not
SQLite's sleeps of 1, 2, 5, 10... ms), within a deadline, and reads keep SQLite's own wait."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import stepca_store_sqlite.store as sqlite_store
from stepca.errors import TokenAlreadyUsed
from stepca_store_sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path):
    store = SQLiteStore(tmp_path / "stepca.db")
    yield store
    store.close()


def other_writer(store: SQLiteStore) -> sqlite3.Connection:
    """Another process's connection, holding the write lock."""
    conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_write_waits_for_the_other_writer_then_lands(store: SQLiteStore, monkeypatch) -> None:
    holder = other_writer(store)
    done = threading.Event()
    errors: list[BaseException] = []
    tries = 0
    real_sleep = sqlite_store.sleep

    def counted_sleep(seconds: float) -> None:
        nonlocal tries
        tries += 1
        assert seconds <= sqlite_store.LAST_RETRY_SECONDS
        if tries == 3:  # it has tried and waited: let the other writer finish
            holder.execute("COMMIT")
        real_sleep(seconds)

    def write() -> None:
        try:
            store.spend_token("jti-waiting")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        done.set()

    monkeypatch.setattr(sqlite_store, "sleep", counted_sleep)
    try:
        threading.Thread(target=write).start()
        assert done.wait(30)
    finally:
        holder.close()
    assert errors == [] and tries >= 3
    with pytest.raises(TokenAlreadyUsed):
        store.spend_token("jti-waiting")


def test_a_write_gives_up_at_its_deadline(store: SQLiteStore, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_SECONDS", 0)
    holder = other_writer(store)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.spend_token("jti-never")
    finally:
        holder.close()
    store.spend_token("jti-never")  # nothing was written before


def test_reads_keep_sqlite_s_own_wait_and_writes_wait_in_the_store(store: SQLiteStore) -> None:
    store.spend_token("jti-1")
    reader, writer = store._connection(), store._connection(writer=True)
    assert reader is not writer
    assert reader.execute("PRAGMA busy_timeout").fetchone()[0] == sqlite_store.BUSY_SECONDS * 1000
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 0


def test_the_wal_is_copied_back_by_a_thread_of_its_own(store: SQLiteStore) -> None:
    store.spend_token("jti-1")
    checkpointer = store._checkpointer
    assert checkpointer is not None and checkpointer.pid == os.getpid()
    # a write checkpoints itself only past the safety net, not every 1,000 pages
    assert store._connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] \
        == sqlite_store.SAFETY_NET_PAGES
    deadline = time.monotonic() + 30
    while checkpointer.checkpoints < 2:
        assert time.monotonic() < deadline, "the checkpoint thread never ran"
        time.sleep(0.05)
    # the database file itself holds the write (immutable: read it without the WAL)
    reader = sqlite3.connect(f"file:{store.path}?immutable=1", uri=True)
    try:
        assert reader.execute("SELECT id FROM used_ott").fetchall() == [("jti-1",)]
    finally:
        reader.close()
    store.close()
    assert not checkpointer._thread.is_alive()
