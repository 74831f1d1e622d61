"""deploy/systemd: the units pass ``systemd-analyze verify``, step-ca tells systemd when it
serves (``Type=notify``), and the renewer's commands, run as the unit writes them, renew."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from stepca.testing import make_pki
from stepca.testing.process import StepCAProcess, free_port, run_step, scripts_dir

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"
INSTALLED_BIN = "/usr/local/bin/"  # where the units expect `step` and `step-ca`


def unit_settings(name: str) -> list[tuple[str, str]]:
    """(key, value) of every setting of a unit file, in order."""
    settings = []
    for line in (UNITS / name).read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.append((key, value))
    return settings


def test_units_pass_systemd_analyze_verify(tmp_path):
    """verify refuses an ExecStart whose program does not exist, so the copies verified here
    name this virtualenv's step-ca and step instead of /usr/local/bin's; nothing else changes."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: ./scripts/install installs Debian's systemd")
    for unit in UNITS.iterdir():
        text = unit.read_text()
        if unit.suffix == ".service":
            assert INSTALLED_BIN in text
            text = text.replace(INSTALLED_BIN, f"{scripts_dir()}/")
        (tmp_path / unit.name).write_text(text)
    assert (scripts_dir() / "step-ca").exists() and (scripts_dir() / "step").exists()
    result = subprocess.run(
        [analyze, "verify", "step-ca.service", "cert-renewer@nginx.service",
         "cert-renewer@nginx.timer"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    # verify only warns (exit 0) about unknown keys: any output is a finding
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_step_ca_unit_is_hardened():
    settings = dict(unit_settings("step-ca.service"))
    assert settings["Type"] == "notify"
    assert settings["User"] == "step" and settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict" and settings["ProtectHome"] == "yes"
    assert settings["PrivateTmp"] == "yes"
    assert settings["AmbientCapabilities"] == settings["CapabilityBoundingSet"] \
        == "CAP_NET_BIND_SERVICE"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # the SQLite store writes its file, -wal and -shm next to each other
    assert settings["ReadWritePaths"] == "/etc/step-ca/db"


def test_step_ca_notifies_systemd_once_it_serves(tmp_path):
    """As systemd does for Type=notify: a datagram socket named in $NOTIFY_SOCKET. step-ca's
    own process (systemd's MAINPID) sends READY=1, and the CA answers the first request made
    after it, with no retry."""
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    ca_json = pki.config(tmp_path / "run", address=f"127.0.0.1:{port}", server={"workers": 1})
    password = tmp_path / "password"
    password.write_bytes(pki.password)
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        notify.settimeout(60)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        env["NOTIFY_SOCKET"] = str(notify_path)
        log = tmp_path / "step-ca.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(scripts_dir() / "step-ca"), str(ca_json), "--password-file", str(password)],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        try:
            fields: dict[str, str] = {}
            for _ in range(10):  # STATUS= and the like may come first
                message, ancillary, _flags, _addr = notify.recvmsg(
                    4096, socket.CMSG_SPACE(3 * 4))
                fields = dict(line.split("=", 1) for line in message.decode().splitlines())
                if fields.get("READY") == "1":
                    break
            assert fields.get("READY") == "1", message
            (level, kind, data), = ancillary
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
            sender_pid = int.from_bytes(data[:4], "little")
            assert sender_pid == proc.pid  # NotifyAccess=main accepts only this one
            context = ssl.create_default_context(cafile=str(pki.steppath / "certs" /
                                                            "root_ca.crt"))
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=context,
                                        timeout=30) as response:
                assert response.status == 200
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()


def renewer_command(setting: str, env: dict[str, str], instance: str) -> list[str]:
    """The unit's command line as systemd runs it: %i and ${VAR} expanded, the installed
    ``step`` replaced by this virtualenv's."""
    (value,) = [v for k, v in unit_settings("cert-renewer@.service") if k == setting]
    value = value.replace("%i", instance).replace(INSTALLED_BIN, f"{scripts_dir()}/")
    value = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], value)
    return shlex.split(value)


@pytest.mark.e2e
def test_renewer_commands_skip_a_fresh_certificate_and_renew(tmp_path):
    steppath = tmp_path / "ca"
    port = free_port()
    password = tmp_path / "password.txt"
    password.write_text("p4ss\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env = {**base, "STEPPATH": str(steppath)}
    run_step("ca", "init", "--name", "Home", "--provisioner", "admin", "--dns", "127.0.0.1",
             "--address", f"127.0.0.1:{port}", "--password-file", str(password), env=env)
    root = steppath / "certs" / "root_ca.crt"
    certs = tmp_path / "certs"
    certs.mkdir()
    with StepCAProcess(steppath / "config" / "ca.json", password_file=password, root=root,
                       port=port, env=env):
        run_step("ca", "certificate", "web", str(certs / "web.crt"), str(certs / "web.key"),
                 "--provisioner-password-file", str(password), env=env)
        first = x509.load_pem_x509_certificate((certs / "web.crt").read_bytes())
        # the unit's defaults, as `systemctl edit cert-renewer@web` would override them
        unit_env = {**env, "CERT_LOCATION": str(certs / "web.crt"),
                    "KEY_LOCATION": str(certs / "web.key")}

        def run(setting: str, **override: str) -> subprocess.CompletedProcess[str]:
            command = renewer_command(setting, {**unit_env, **override}, "web")
            return subprocess.run(command, env=unit_env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=120)

        # ExecCondition: 1 (not due) and 2 (no certificate) make systemd skip ExecStart
        assert run("ExecCondition").returncode == 1
        assert run("ExecCondition", CERT_LOCATION=str(certs / "gone.crt")).returncode == 2
        renewed = run("ExecStart")
        assert renewed.returncode == 0, renewed.stderr
    second = x509.load_pem_x509_certificate((certs / "web.crt").read_bytes())
    assert second.serial_number != first.serial_number and second.subject == first.subject
