"""deploy/docker outside a container: the entrypoint initialises a CA from DOCKER_STEPCA_INIT_*
on the first start and reuses it on the next, with the SQLite or the PostgreSQL store, and the
healthcheck tells a serving CA from a stopped one. Docker itself is not run here: the
Dockerfile and compose file get static checks against the files they name."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.testing.process import free_port, run_step, scripts_dir, wait_for

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "deploy" / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
HEALTHCHECK = DOCKER / "healthcheck.py"


def container_env(steppath: Path, **init: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("STEP", "DOCKER_STEPCA_"))}
    return {**base, "PATH": f"{scripts_dir()}{os.pathsep}{base.get('PATH', '')}",
            "STEPPATH": str(steppath), **{f"DOCKER_STEPCA_INIT_{k}": v for k, v in init.items()}}


def healthy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(scripts_dir() / "python"), str(HEALTHCHECK)], env=env,
                          capture_output=True, text=True, timeout=30)


@contextmanager
def container(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The entrypoint as the image runs it (no arguments: step-ca), until it serves."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(["/bin/sh", str(ENTRYPOINT)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        def serving() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the entrypoint exited {proc.returncode}:\n"
                                     f"{log.read_text()}")
            return healthy(env).returncode == 0
        wait_for(serving, "the CA started by the entrypoint to serve")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()  # exec'd step-ca stopped cleanly on SIGTERM


def root_fingerprint(steppath: Path) -> str:
    root = x509.load_pem_x509_certificate((steppath / "certs" / "root_ca.crt").read_bytes())
    return root.fingerprint(root.signature_hash_algorithm).hex()


def assert_keys_encrypted_with(steppath: Path, password: bytes) -> None:
    for name in ("root_ca_key", "intermediate_ca_key"):
        pem = (steppath / "secrets" / name).read_bytes()
        with pytest.raises(TypeError):  # "Password was not given but private key is encrypted"
            serialization.load_pem_private_key(pem, None)
        serialization.load_pem_private_key(pem, password)


@pytest.mark.e2e
def test_first_start_initialises_and_second_start_reuses(tmp_path):
    steppath = tmp_path / "home-step"
    port = free_port()
    env = container_env(steppath, NAME="Home", DNS_NAMES="ca.example.internal,127.0.0.1",
                        PROVISIONER_NAME="ops@example.internal", ADDRESS=f"127.0.0.1:{port}")
    log = tmp_path / "container.log"
    with container(env, log):
        health = run_step("ca", "health", "--ca-url", f"https://127.0.0.1:{port}", env=env)
        assert health.stdout == "ok\n"
    config = json.loads((steppath / "config" / "ca.json").read_text())
    assert config["dnsNames"] == ["ca.example.internal", "127.0.0.1"]
    assert config["address"] == f"127.0.0.1:{port}"
    assert [p["name"] for p in config["authority"]["provisioners"]] == ["ops@example.internal"]
    assert config["db"]["type"] == "sqlite"
    root = x509.load_pem_x509_certificate((steppath / "certs" / "root_ca.crt").read_bytes())
    assert root.subject.rfc4514_string() == "CN=Home Root CA,O=Home"
    password_file = steppath / "secrets" / "password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_bytes().strip()
    assert len(password) >= 32 and password.decode() not in log.read_text()  # never printed
    assert_keys_encrypted_with(steppath, password)
    assert healthy(env).returncode == 1  # the CA is stopped: the healthcheck says so

    before = {p: p.read_bytes() for p in steppath.rglob("*") if p.is_file()
              and p.parent.name != "db"}
    fingerprint = root_fingerprint(steppath)
    # other init values on the next start change nothing: the volume's PKI is reused
    second = {**env, "DOCKER_STEPCA_INIT_NAME": "Other", "DOCKER_STEPCA_INIT_PASSWORD": "x" * 40}
    with container(second, log):
        pass
    assert root_fingerprint(steppath) == fingerprint
    assert {p: p.read_bytes() for p in before} == before
    assert log.read_text().count("generated the CA password") == 1


@pytest.mark.e2e
def test_first_start_with_a_password_file_and_the_postgresql_store(tmp_path):
    from stepca.testing.postgres import postgres_cluster

    steppath = tmp_path / "home-step"
    port = free_port()
    password_file = tmp_path / "ca-password"
    password_file.write_text("correct horse battery staple\n")
    with postgres_cluster() as pg:
        dsn_file = tmp_path / "dsn"
        dsn_file.write_text(pg.dsn + "\n")
        env = container_env(steppath, NAME="Shared", DNS_NAMES="127.0.0.1",
                            ADDRESS=f"127.0.0.1:{port}", PASSWORD_FILE=str(password_file),
                            DB_TYPE="postgresql", DB_DATASOURCE_FILE=str(dsn_file),
                            DB_DATABASE=pg.database)
        with container(env, tmp_path / "container.log"):
            run_step("ca", "certificate", "svc.example.internal", str(tmp_path / "svc.crt"),
                     str(tmp_path / "svc.key"), "--provisioner-password-file",
                     str(password_file), env=env)
        issued = x509.load_pem_x509_certificate((tmp_path / "svc.crt").read_bytes())
        stored = pg.psql("SELECT serial FROM x509_certs").split()
        assert str(issued.serial_number) in stored
    ca_json = steppath / "config" / "ca.json"
    assert json.loads(ca_json.read_text())["db"] == {
        "type": "postgresql", "dataSource": pg.dsn, "database": pg.database}
    assert stat.S_IMODE(ca_json.stat().st_mode) == 0o600  # it holds the database password
    assert (steppath / "secrets" / "password").read_text() == password_file.read_text()
    assert_keys_encrypted_with(steppath, b"correct horse battery staple")


@pytest.mark.parametrize("init, message", [
    ({"NAME": "Home"}, "set DOCKER_STEPCA_INIT_NAME and DOCKER_STEPCA_INIT_DNS_NAMES"),
    ({"NAME": "Home", "DNS_NAMES": "ca.internal", "ACME": "true"},
     "DOCKER_STEPCA_INIT_ACME is not supported by stepca"),
])
def test_first_start_refuses_what_it_cannot_do_and_writes_nothing(tmp_path, init, message):
    steppath = tmp_path / "home-step"
    steppath.mkdir()
    result = subprocess.run(["/bin/sh", str(ENTRYPOINT)], env=container_env(steppath, **init),
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1 and message in result.stderr
    assert not any(steppath.iterdir())


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines  # type: ignore[misc]
            if line and not line.startswith("#")]


def test_dockerfile_names_what_exists_and_runs_unprivileged():
    steps = dockerfile_instructions()
    env = dict(item.split("=", 1) for key, value in steps if key == "ENV"
               for item in shlex.split(value))
    users = [value for key, value in steps if key == "USER"]
    assert users and users[-1] not in ("root", "0")
    volumes = [json.loads(value) for key, value in steps if key == "VOLUME"]
    assert [env["STEPPATH"]] in volumes
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    sources: set[str] = set()
    copied: dict[str, str] = {}  # target: source
    for key, value in steps:
        if key == "COPY":
            *froms, target = value.split()
            for source in froms:
                # the build context is the repository's root; nothing copied is ignored
                assert (REPO / source).exists(), source
                assert source not in ignored
                sources.add(source)
                copied[target] = source
    command = next(value for key, value in steps
                   if key == "RUN" and value.startswith("pip install")).split("&&")[0]
    installed = {path.removeprefix("./").rstrip("/") for path in command.split()[2:]}
    assert {".", "plugins/jwk", "plugins/store_sqlite", "plugins/store_postgresql"} <= installed
    for path in installed - {"."}:
        assert path in sources and (REPO / path / "pyproject.toml").is_file(), path
    # "." is the root's pyproject.toml: the core and the CLI
    assert {"pyproject.toml", "README.md", "core", "cli"} <= sources
    entrypoint = json.loads(next(value for key, value in steps if key == "ENTRYPOINT"))
    assert copied[f"/usr/local/bin/{entrypoint[0]}"] == "deploy/docker/entrypoint.sh"
    health = next(value for key, value in steps if key == "HEALTHCHECK")
    command = json.loads(health.split("CMD", 1)[1])
    assert copied[f"/usr/local/bin/{command[0]}"] == "deploy/docker/healthcheck.py"


def test_compose_sets_only_variables_the_entrypoint_reads():
    compose = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\b(DOCKER_STEPCA_INIT_\w+):", compose))
    assert "DOCKER_STEPCA_INIT_DB_TYPE" in used
    script = ENTRYPOINT.read_text()
    assert {name for name in used if name not in script} == set()
