"""A child process on a pseudo-terminal, for what ``step`` does only on a real terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping

__all__ = ["Terminal"]


class Terminal:
    """Run ``args`` on a new pseudo-terminal; read its output until an expected text appears,
    type lines or raw keys (escape sequences included)."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave,
                                     env=dict(env), close_fds=True)
        os.close(slave)
        self.output = ""

    def expect(self, text: str, timeout: float = 20) -> None:
        """Wait until ``text`` appears in everything read since the start."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"never saw {text!r}; got:\n{self.output}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
        assert text in self.output, self.output

    def send(self, line: str) -> None:
        self.send_keys(line + "\n")

    def send_keys(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 120) -> int:
        """Read to the end and return the exit status."""
        deadline = time.monotonic() + timeout
        reading = True
        while reading and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed its side of the terminal
                    chunk = b""
                reading = bool(chunk)
                self.output += chunk.decode(errors="replace")
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return code
