"""stepca.testing.postgres: a private PostgreSQL server that the scale-out tests start, restart
and stop, reached over the DSN a ca.json would hold."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from stepca.testing.postgres import (PostgresCluster, PostgresError, postgres_cluster,
                                     process_alive)

pytestmark = pytest.mark.e2e


def _psql(cluster: PostgresCluster, url: str, sql: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run([str(cluster.bin_dir / "psql"), url, "-Atqc", sql], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def _gone(pids: list[int]) -> bool:
    return not any(process_alive(pid) for pid in pids)


def test_a_private_server_reached_over_its_dsn_and_gone_afterwards() -> None:
    with postgres_cluster() as pg:
        assert pg.dsn == f"postgresql://stepca:{pg.password}@127.0.0.1:{pg.port}/"
        answer = _psql(pg, pg.url(), "SELECT current_user, current_database(), "
                                     "current_setting('listen_addresses')")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == "stepca|stepca|127.0.0.1"
        # the password is checked (scram-sha-256 over TCP), not trusted
        wrong = _psql(pg, pg.url().replace(pg.password, "not-the-password"), "SELECT 1")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as postgres
            assert _uid(pg.pid) == pg._os_user_entry().pw_uid != 0
        base, pid = pg.base, pg.pid
        processes = [pid, *pg._children()]
        assert len(processes) > 1  # the postmaster and its background processes
    assert _gone(processes)
    assert not base.exists()


def test_a_restart_keeps_the_data_and_the_port() -> None:
    with postgres_cluster() as pg:
        pg.psql("CREATE TABLE kept (x INTEGER); INSERT INTO kept VALUES (42)")
        port, pid = pg.port, pg.pid
        pg.stop()
        assert not pg.running() and _gone([pid])
        refused = _psql(pg, pg.url(), "SELECT 1")
        assert refused.returncode != 0  # down means down
        pg.start()
        assert (pg.port, pg.running()) == (port, True) and pg.pid != pid
        assert pg.psql("SELECT x FROM kept").strip() == "42"
        pg.restart()
        assert pg.port == port and pg.psql("SELECT x FROM kept").strip() == "42"


def test_a_server_that_will_not_stop_is_killed() -> None:
    with postgres_cluster() as pg:
        processes = [pg.pid, *pg._children()]
        os.kill(pg.pid, signal.SIGSTOP)  # deaf to pg_ctl's fast shutdown
        pg.stop(timeout=2)
        assert not pg.running()
        assert _gone(processes)


def test_a_port_in_use_is_a_clear_error() -> None:
    with postgres_cluster() as first:
        second = PostgresCluster.create()
        try:
            second.port = first.port
            with pytest.raises(PostgresError) as refused:
                second.start(timeout=10)
            assert f"the server on 127.0.0.1:{first.port} failed" in str(refused.value)
            assert "server log:" in str(refused.value)
            assert not second.running()
        finally:
            second.remove()
        assert not second.base.exists()
