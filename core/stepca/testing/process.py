"""Real processes for end-to-end tests: ``step-ca`` under gunicorn and the ``step`` CLI."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["StepCAProcess", "Venv", "free_port", "run_step", "scripts_dir", "wait_for"]


def free_port(*, dual_stack: bool = False) -> int:
    """A port free on 127.0.0.1 (``dual_stack``: on every IPv4 and IPv6 address) for a server
    the test starts next.

    It is taken below the kernel's ephemeral range, from which ``bind(0)`` and every outgoing
    connection draw theirs: there, a client socket of a test running beside this one (a
    pytest-xdist worker) could take the port before the server binds it. Each worker has a
    slice of its own; the port is random within it (a port just released may linger in
    TIME_WAIT, and the bind below then skips it)."""
    ports = _own_ports()
    for _ in range(500):
        port = random.choice(ports) if ports else 0
        family = socket.AF_INET6 if dual_stack else socket.AF_INET
        try:
            with socket.socket(family) as sock:
                if dual_stack:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::" if dual_stack else "127.0.0.1", port))
                return int(sock.getsockname()[1])
        except OSError:
            continue
    raise RuntimeError(f"no free port among {len(ports)} tried at random")


def _own_ports() -> range:
    """This worker's slice of the ports from 10000 up to the ephemeral range; empty when the
    ephemeral range starts too low to leave room (then the kernel picks)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default, and about where other systems start
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    size = (low - 10000) // count
    if size < 100:
        return range(0)
    return range(10000 + index * size, 10000 + (index + 1) * size)


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def scripts_dir() -> Path:
    """The folder holding this interpreter's console scripts (``step``, ``step-ca``)."""
    return Path(sys.executable).parent


def _executable(name: str, bin_dir: Path | None) -> str:
    folder = bin_dir or scripts_dir()
    path = folder / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed in {folder} nor on PATH")
    return found


def run_step(*args: str, env: Mapping[str, str], input: str | None = None,
             check: bool = True, bin_dir: Path | None = None, cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``step`` CLI without a terminal (stdin is a pipe or /dev/null)."""
    result = subprocess.run([_executable("step", bin_dir), *args], env=dict(env), cwd=cwd,
                            input=input, stdin=None if input is not None else subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"step {' '.join(args)} exited {result.returncode}:\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result


class StepCAProcess:
    """``step-ca <ca.json> --password-file F`` in the background, stopped with SIGTERM."""

    def __init__(self, ca_json: Path, *, password_file: Path, root: Path, port: int,
                 env: Mapping[str, str], bin_dir: Path | None = None,
                 extra_args: Sequence[str] = (), log_path: Path | None = None) -> None:
        self.ca_json, self.password_file, self.root, self.port = ca_json, password_file, root, port
        self.env, self.bin_dir, self.extra_args = dict(env), bin_dir, list(extra_args)
        self.log_path = log_path or ca_json.with_name(f"step-ca-{port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> StepCAProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            [_executable("step-ca", self.bin_dir), str(self.ca_json), "--password-file",
             str(self.password_file), *self.extra_args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        context = ssl.create_default_context(cafile=str(self.root))
        context.check_hostname = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"step-ca exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", context=context,
                                            timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"step-ca did not become healthy:\n{self.logs()}")

    def pids(self) -> list[int]:
        """The gunicorn master and its children: the workers, the plain-HTTP listener, not the
        retention process (``stepca.retention``)."""
        from stepca.retention import PROCESS_NAME

        if self.proc is None:
            return []
        found = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return found
        for pid in map(int, children.split()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == PROCESS_NAME:
                    continue
            except OSError:  # gone meanwhile
                continue
            found.append(pid)
        return found

    def retention_pid(self) -> int | None:
        """The retention process of this step-ca, if it runs."""
        from stepca.retention import PROCESS_NAME

        if self.proc is None:
            return None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            return next((pid for pid in map(int, children.split())
                         if Path(f"/proc/{pid}/comm").read_text().strip() == PROCESS_NAME),
                        None)
        except OSError:
            return None

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_log", None) and not self._log.closed:
            self._log.close()

    def __enter__(self) -> StepCAProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Venv:
    """A fresh virtual environment: install distributions into it from local paths, then run
    its own ``step`` and ``step-ca`` (``bin_dir=venv.bin``) or its interpreter."""

    root: Path

    @classmethod
    def create(cls, root: Path, *, pip: bool = True) -> Venv:
        made = subprocess.run([sys.executable, "-m", "venv", str(root),
                               *([] if pip else ["--without-pip"])],
                              capture_output=True, text=True, timeout=300)
        if made.returncode != 0:
            raise AssertionError(f"python -m venv {root} failed:\n{made.stderr}")
        return cls(root)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        # nothing from the test run's own environment may leak in: no PYTHONPATH, no venv
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("STEP") and k not in ("PYTHONPATH", "PYTHONHOME",
                                                         "VIRTUAL_ENV", "PYTHONSAFEPATH")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        return {**env, **extra}

    def pip_install(self, *paths: Path) -> str:
        """``pip install PATHS`` with this environment's pip; their dependencies come from the
        package index pip is configured with."""
        return self._install("pip install", [str(self.python), "-m", "pip", "install",
                                             "--no-input", *map(str, paths)])

    def uv_install(self, *args: str) -> str:
        """``uv pip install ARGS`` into this environment, with the uv beside this interpreter
        (the ``uv`` distribution of the ``test`` extra). uv reads no pip configuration: it uses
        the index uv is configured with (PyPI by default) and the system's certificates."""
        return self._install("uv pip install", [sys.executable, "-m", "uv", "pip", "install",
                                                "--python", str(self.python), "--system-certs",
                                                *args])

    def _install(self, what: str, command: list[str]) -> str:
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True,
                                timeout=600, cwd=self.root)
        if result.returncode != 0:
            raise AssertionError(f"{what} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def python_json(self, code: str) -> Any:
        """Run ``code`` with this environment's interpreter and decode what it prints."""
        result = subprocess.run([str(self.python), "-c", code], env=self.env(),
                                capture_output=True, text=True, timeout=60, cwd=self.root)
        if result.returncode != 0:
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)
