"""Real processes for end-to-end tests: ``step-ca`` under gunicorn and the ``step`` CLI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["StepCAProcess", "free_port", "run_step", "scripts_dir"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        """The gunicorn master and its workers."""
        if self.proc is None:
            return []
        found = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            found += [int(p) for p in children.split()]
        except OSError:
            pass
        return found

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
