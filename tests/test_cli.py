"""The step CLI without a terminal: flags answer every prompt, a missing value is a clear
error (never a hang), data goes to stdout and status lines to stderr."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stepca.testing.process import run_step


@pytest.fixture
def env(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return {**base, "STEPPATH": str(tmp_path / "step")}


def test_path(env, tmp_path):
    assert run_step("path", env=env).stdout == f"{tmp_path / 'step'}\n"
    assert run_step("path", "--base", env=env).stdout == f"{tmp_path / 'step'}\n"


@pytest.mark.parametrize(("args", "flags"), [
    ([], "the '--name', '--dns', '--address', '--provisioner' and '--password-file' flags"),
    (["--name", "X", "--dns", "localhost"],
     "the '--address', '--provisioner' and '--password-file' flags"),
    (["--name", "X", "--dns", "localhost", "--address", ":9000", "--provisioner", "p"],
     "the '--password-file' flag"),
])
def test_init_without_terminal_names_the_missing_flags_before_any_output(env, args, flags):
    result = run_step("ca", "init", *args, env=env, check=False, timeout=30)
    assert result.returncode == 1
    # one line, and no question printed before it (step opens /dev/tty and fails there)
    assert result.stderr == f"'step ca init' requires {flags} (no terminal to ask on)\n"
    assert result.stdout == ""
    assert not (Path(env["STEPPATH"]) / "config" / "ca.json").exists()


def test_init_refuses_an_existing_pki_and_bad_address(env, tmp_path):
    password = tmp_path / "pw"
    password.write_text("secret")
    args = ["ca", "init", "--name", "X", "--dns", "ca.internal,10.0.0.1", "--provisioner", "p",
            "--password-file", str(password)]
    bad = run_step(*args, "--address", "9000", env=env, check=False)
    assert bad.returncode == 1 and "invalid address '9000'" in bad.stderr
    run_step(*args, "--address", ":443", env=env)
    config = json.loads((Path(env["STEPPATH"]) / "config" / "ca.json").read_text())
    assert config["dnsNames"] == ["ca.internal", "10.0.0.1"]
    defaults = json.loads((Path(env["STEPPATH"]) / "config" / "defaults.json").read_text())
    assert defaults["ca-url"] == "https://ca.internal"  # port 443 is left out
    again = run_step(*args, "--address", ":443", env=env, check=False)
    assert again.returncode == 1 and "already holds a CA" in again.stderr


def test_with_ca_url_and_hosted_deployment(env, tmp_path):
    password = tmp_path / "pw"
    password.write_text("secret")
    base = ["ca", "init", "--name", "X", "--dns", "localhost", "--address", "127.0.0.1:9443",
            "--provisioner", "p", "--password-file", str(password)]
    hosted = run_step(*base, "--deployment-type", "hosted", env=env, check=False)
    assert hosted.returncode == 1 and hosted.stdout == ""
    assert "deployment type 'hosted' is not available" in hosted.stderr
    run_step(*base, "--with-ca-url", "ca.example.com:9443", env=env)
    defaults = json.loads((Path(env["STEPPATH"]) / "config" / "defaults.json").read_text())
    assert defaults["ca-url"] == "https://ca.example.com:9443"


@pytest.mark.parametrize(("args", "message"), [
    (["ca", "token", "foo"], "'step ca token' requires the '--ca-url' flag"),
    (["ca", "health"], "'step ca health' requires the '--ca-url' flag"),
    (["ca", "health", "--ca-url", "http://ca.example.com"],
     "invalid value 'http://ca.example.com' for flag '--ca-url'; must have https scheme"),
    (["ca", "health", "--ca-url", "https://localhost:1"],
     "'step ca health' requires the '--root' flag"),
    (["ca", "bootstrap", "--ca-url", "https://localhost:1"],
     "'step ca bootstrap' requires the '--fingerprint' flag"),
    (["ca", "certificate", "a", "same", "same"], "cannot be equal"),
    (["ca", "certificate", "a", "a.crt", "a.key", "--curve", "P-384"],
     "flag '--curve' requires the '--kty' flag"),
    (["ca", "certificate", "a", "a.crt", "a.key", "--token", "x.y.z", "--san", "b"],
     "flag '--san' is incompatible with '--token'"),
    (["crypto", "jwt", "inspect"], "'step crypto jwt inspect' requires the '--insecure' flag"),
    (["certificate", "inspect", "/nonexistent.crt"], "no such file or directory"),
])
def test_clear_errors(env, args, message):
    result = run_step(*args, env=env, check=False, timeout=30)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_flags_come_from_environment_and_defaults(env, tmp_path):
    config = Path(env["STEPPATH"]) / "config"
    config.mkdir(parents=True)
    (config / "defaults.json").write_text(json.dumps({"ca-url": "http://from-defaults"}))
    from_defaults = run_step("ca", "health", env=env, check=False)
    assert "invalid value 'http://from-defaults' for flag '--ca-url'" in from_defaults.stderr
    from_env = run_step("ca", "health", env={**env, "STEP_CA_URL": "http://from-env"},
                        check=False)
    assert "invalid value 'http://from-env' for flag '--ca-url'" in from_env.stderr
    from_flag = run_step("ca", "health", "--ca-url", "http://from-flag",
                         env={**env, "STEP_CA_URL": "http://from-env"}, check=False)
    assert "invalid value 'http://from-flag' for flag '--ca-url'" in from_flag.stderr


def test_top_level_base64(env):
    assert run_step("base64", env=env, input="hello").stdout.strip() == "aGVsbG8="
    assert run_step("base64", "-d", env=env, input="aGVsbG8=").stdout == "hello"
