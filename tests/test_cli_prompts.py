"""`step ca init` on a real terminal (a pseudo-terminal): it asks for what the flags left out."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from stepca.testing.process import scripts_dir
from stepca.testing.terminal import Terminal


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
