"""`step ca init` on a real terminal (a pseudo-terminal): it asks for what the flags left out."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from stepca.testing.process import scripts_dir


class Terminal:
    """A child process on a pseudo-terminal, read until an expected prompt appears."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True)
        os.close(slave)
        self.output = ""

    def expect(self, text: str, timeout: float = 20) -> None:
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
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 120) -> int:
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


def test_init_asks_for_everything_and_generates_a_password(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STEP")},
           "STEPPATH": str(tmp_path / "step"), "TERM": "dumb"}
    term = Terminal([str(scripts_dir() / "step"), "ca", "init"], env)
    term.expect("What would you like to name your new PKI?")
    term.send("Interactive")
    term.expect("What DNS names or IP addresses will clients use to reach your CA?")
    term.send("ca.internal, 10.1.2.3")
    term.expect("What IP and port will your new CA bind to?")
    term.send("127.0.0.1:9443")
    term.expect("What would you like to name the CA's first provisioner?")
    term.send("you@example.com")
    term.expect("Choose a password for your CA keys and first provisioner.")
    # getpass flushes pending input when it turns echo off, and only then writes the prompt's
    # last space: answer once that space is there
    term.expect("[leave empty and we'll generate one]: ")
    term.send("")
    assert term.finish() == 0, term.output
    password = re.search(r"✔ Password: ([A-Za-z0-9]{32})", term.output).group(1)
    assert "Your PKI is ready to go." in term.output
    config = json.loads((tmp_path / "step" / "config" / "ca.json").read_text())
    assert config["dnsNames"] == ["ca.internal", "10.1.2.3"]
    assert config["address"] == "127.0.0.1:9443"
    assert config["authority"]["provisioners"][0]["name"] == "you@example.com"
    key = Path(tmp_path / "step" / "secrets" / "intermediate_ca_key")
    check = subprocess.run(["openssl", "pkey", "-in", str(key), "-passin", f"pass:{password}",
                            "-noout"], capture_output=True)
    assert check.returncode == 0, check.stderr
