"""A private PostgreSQL server for tests, from Debian's ``postgresql`` package.

``postgres_cluster()`` runs ``initdb`` in a new temporary folder, starts the server on a free
127.0.0.1 port (as the ``postgres`` user when the tests run as root: PostgreSQL refuses root),
with a superuser ``stepca`` whose password is random, creates the database ``stepca`` over the
DSN, and at the end stops the server (fast shutdown, then SIGKILL) and removes the folder::

    with postgres_cluster() as pg:
        ca_json["db"] = {"type": "postgresql", "dataSource": pg.dsn, "database": pg.database}
        ...
        pg.restart()          # the same data and port: what a database restart looks like

Every wait is bounded and fails naming what did not happen, with the server's last log lines.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PostgresCluster", "PostgresError", "find_bin_dir", "postgres_cluster",
           "process_alive"]

SUPERUSER = "stepca"
DATABASE = "stepca"
OS_USER_WHEN_ROOT = "postgres"


class PostgresError(RuntimeError):
    """The test server could not be set up, started or stopped."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` (Debian's layout),
    else the folder of an ``initdb`` on PATH."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if found:
        return max(found, key=lambda p: _version_key(p.parent.name))
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresError("PostgreSQL's initdb is neither under /usr/lib/postgresql/*/bin nor on "
                        "PATH: install Debian's postgresql package (./scripts/install does)")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in name.split("."))


def process_alive(pid: int) -> bool:
    """``pid`` runs: it exists and is not a zombie (pg_ctl's daemonised server is reparented
    to a process that may not reap it at once)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _free_port() -> int:
    from stepca.testing.process import free_port

    return free_port()


@dataclass
class PostgresCluster:
    """One test server: its folder (``data`` inside), port and superuser's password."""

    bin_dir: Path
    base: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    user: str = SUPERUSER
    database: str = DATABASE
    os_user: str | None = None
    """Who runs the server: ``postgres`` when we are root, else None (ourselves)."""
    pid: int | None = None

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def dsn(self) -> str:
        """step-ca's ``dataSource`` form: no database (ca.json's ``database`` names it)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/"

    def url(self, database: str | None = None) -> str:
        return f"{self.dsn}{database or self.database}"

    # -- life cycle --------------------------------------------------------------------------------

    @classmethod
    def create(cls, *, timeout: float = 120) -> PostgresCluster:
        """``initdb`` in a new folder (under the system's temporary folder, which the
        ``postgres`` user can reach; pytest's ``tmp_path`` is private to root)."""
        bin_dir = find_bin_dir()
        base = Path(tempfile.mkdtemp(prefix="stepca-pg-"))
        cluster = cls(bin_dir=bin_dir, base=base,
                      os_user=OS_USER_WHEN_ROOT if os.geteuid() == 0 else None)
        try:
            cluster._own(base)
            password_file = base / "pwfile"
            password_file.write_text(cluster.password)
            cluster._own(password_file)
            cluster._run([str(bin_dir / "initdb"), "-D", str(cluster.data), "-U", cluster.user,
                          f"--pwfile={password_file}", "-E", "UTF8", "--auth-local=trust",
                          "--auth-host=scram-sha-256", "--no-instructions", "--no-sync"],
                         what="initdb", timeout=timeout)
            password_file.unlink()
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return cluster

    def start(self, *, timeout: float = 60) -> None:
        """Start the server on ``port``, or on a free port when it has none yet (three tries:
        another process may take the port between the probe and the start)."""
        if self.port:
            self._start_on(self.port, timeout)
            return
        for attempt in range(3):
            port = _free_port()
            try:
                self._start_on(port, timeout)
                self.port = port
                return
            except PostgresError:
                if attempt == 2:
                    raise

    def _start_on(self, port: int, timeout: float) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data),
                   "-l", str(self.base / "server.log"), "-w", "-t", str(int(timeout)),
                   "-o", f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1", "start"],
                  what=f"the server on 127.0.0.1:{port}", timeout=timeout + 10)
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def create_database(self, *, timeout: float = 30) -> None:
        """``CREATE DATABASE`` over the DSN: TCP and the password, as a store connects."""
        self.psql(f'CREATE DATABASE "{self.database}"', database="postgres", timeout=timeout)

    def psql(self, sql: str, *, database: str | None = None, timeout: float = 30) -> str:
        """Run ``sql`` with ``psql`` over TCP as the superuser; its output, unaligned."""
        url = f"postgresql://{self.user}@127.0.0.1:{self.port}/{database or self.database}"
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}
        try:
            done = subprocess.run([str(self.bin_dir / "psql"), url, "-v", "ON_ERROR_STOP=1",
                                   "-Atqc", sql], env=env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PostgresError(f"psql on 127.0.0.1:{self.port} took more than {timeout} s"
                                f"{self._log_tail()}") from None
        if done.returncode != 0:
            raise PostgresError(f"psql on 127.0.0.1:{self.port} failed: "
                                f"{done.stderr.strip()}{self._log_tail()}")
        return done.stdout

    def running(self) -> bool:
        """The postmaster we started is alive (not a zombie) and serves our data folder."""
        if self.pid is None or not process_alive(self.pid):
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.data).encode() in cmdline

    def stop(self, *, timeout: float = 30) -> None:
        """A fast shutdown (clients cut off, no crash recovery needed), else SIGKILL; returns
        once the postmaster is gone. The data folder stays, for ``start`` again."""
        if not self.running():
            self.pid = None
            return
        children = self._children()  # its backends: gone too before stop returns
        try:
            self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                       "-t", str(int(timeout)), "stop"], what="pg_ctl stop", timeout=timeout + 10)
        except PostgresError:
            if self.running():
                os.kill(self.pid, signal.SIGKILL)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise PostgresError(f"the PostgreSQL server (pid {self.pid}) on port "
                                    f"{self.port} is still running {timeout} s after SIGKILL")
            time.sleep(0.05)
        while any(process_alive(child) for child in children):
            if time.monotonic() > deadline:  # they notice the postmaster's death at once
                raise PostgresError(f"PostgreSQL processes {children} outlived their server")
            time.sleep(0.05)
        self.pid = None

    def _children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def restart(self, *, timeout: float = 60) -> None:
        """Stop, then start on the same data folder and port."""
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------------

    def _own(self, path: Path) -> None:
        path.chmod(0o700 if path.is_dir() else 0o600)
        if self.os_user is not None:
            entry = self._os_user_entry()
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _os_user_entry(self) -> pwd.struct_passwd:
        assert self.os_user is not None
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            raise PostgresError(f"PostgreSQL refuses to run as root and there is no "
                                f"'{self.os_user}' user to run it: install Debian's postgresql "
                                "package, which creates it") from None

    def _run(self, command: list[str], *, what: str, timeout: float) -> None:
        as_user: dict[str, object] = {}
        if self.os_user is not None:
            entry = self._os_user_entry()
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                       "env": {**os.environ, "HOME": entry.pw_dir, "USER": self.os_user}}
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=self.base,
                                  stdin=subprocess.DEVNULL, timeout=timeout,
                                  **as_user)  # type: ignore[call-overload]
        except subprocess.TimeoutExpired:
            raise PostgresError(f"{what} took more than {timeout} s{self._log_tail()}") from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresError(f"{what} failed: {' / '.join(output)}{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = (self.base / "server.log").read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return ""
        return "; server log: " + " / ".join(lines) if lines else ""


@contextmanager
def postgres_cluster(*, timeout: float = 120) -> Iterator[PostgresCluster]:
    """A started test server with the database ``stepca``; stopped and removed at the end."""
    cluster = PostgresCluster.create(timeout=timeout)
    try:
        cluster.start(timeout=timeout)
        cluster.create_database()
        yield cluster
    finally:
        cluster.remove()
