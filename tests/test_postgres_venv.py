"""A fresh virtual environment with `stepca`, `stepca-jwk` and `stepca-store-postgresql` only (no
`stepca-store-sqlite`) runs the walkthrough on a private PostgreSQL: `step ca init`, `step-ca`
refusing the SQLite database `step ca init` wrote (naming the distribution to install), then
serving once ca.json's `db` names the PostgreSQL database, and its own `step` bootstrapping,
getting a certificate, renewing and revoking it, all recorded in that database."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from stepca.testing.postgres import PostgresCluster, postgres_cluster
from stepca.testing.process import StepCAProcess, Venv, free_port, run_step

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    env = Venv.create(tmp_path_factory.mktemp("no-sqlite") / "venv")
    env.uv_install(str(REPO), str(REPO / "plugins" / "jwk"),
                   str(REPO / "plugins" / "store_postgresql"))
    return env


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


def test_the_venv_has_no_sqlite_store(venv: Venv) -> None:
    names = venv.python_json(
        "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'] "
        "for d in m.distributions() if d.metadata['Name'].startswith('stepca'))))")
    assert names == ["stepca", "stepca-jwk", "stepca-store-postgresql"]
    absent = subprocess.run([str(venv.python), "-c", "import stepca_store_sqlite"],
                            env=venv.env(), capture_output=True, text=True, timeout=60)
    assert absent.returncode != 0 and "ModuleNotFoundError" in absent.stderr
    listed = run_step("plugins", env=venv.env(), bin_dir=venv.bin).stdout
    stores = set(re.findall(r"^\s+certificate store (\S+)$", listed, flags=re.MULTILINE))
    assert stores == {"memory", "postgresql"}, listed


def test_the_walkthrough_runs_on_postgresql_without_sqlite(venv: Venv, pg: PostgresCluster,
                                                           tmp_path: Path) -> None:
    port = free_port()
    url = f"https://localhost:{port}"
    password = tmp_path / "password.txt"
    password.write_text("p4ss\n")
    ca_env = venv.env(STEPPATH=str(tmp_path / "ca"))
    foo_env = venv.env(STEPPATH=str(tmp_path / "foo"))

    def step(*args: str, env: dict[str, str] = foo_env,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step(*args, env=env, check=check, bin_dir=venv.bin, cwd=tmp_path)

    init = step("ca", "init", "--name", "Smallstep", "--provisioner", "admin", "--dns",
                "localhost", "--dns", "127.0.0.1", "--address", f"127.0.0.1:{port}",
                "--password-file", str(password), "--provisioner-password-file", str(password),
                env=ca_env)
    fingerprint = re.search(r"Root fingerprint: ([0-9a-f]{64})", init.stderr)
    assert fingerprint, init.stderr
    ca_json = tmp_path / "ca" / "config" / "ca.json"
    root = tmp_path / "ca" / "certs" / "root_ca.crt"
    config = json.loads(ca_json.read_text())
    assert config["db"]["type"] == "sqlite"  # what `step ca init` writes

    # without its plugin, step-ca refuses the SQLite database, naming the distribution
    refused = subprocess.run([str(venv.bin / "step-ca"), str(ca_json), "--password-file",
                              str(password)], env=ca_env, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=60)
    assert refused.returncode == 1
    assert ("ca.json db.type 'sqlite' is not provided by any installed plugin (installed: "
            "memory, postgresql); install its plugin: pip install stepca-store-sqlite"
            ) in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    config["db"] = {"type": "postgresql", "dataSource": pg.dsn, "database": pg.database}
    ca_json.write_text(json.dumps(config, indent="\t"))
    with StepCAProcess(ca_json, password_file=password, root=root, port=port, env=ca_env,
                       bin_dir=venv.bin):
        step("ca", "bootstrap", "--ca-url", url, "--fingerprint", fingerprint.group(1))
        assert step("ca", "health").stdout == "ok\n"
        token = step("ca", "token", "foo.internal", "--provisioner", "admin",
                     "--password-file", str(password)).stdout.strip()
        out = step("ca", "certificate", "foo.internal", "foo.crt", "foo.key", "--token", token)
        assert "✔ Certificate: foo.crt" in out.stderr
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted",
                                 "foo.crt", "foo.crt"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
        assert verify.returncode == 0 and "foo.crt: OK" in verify.stdout, verify.stderr
        issued = x509.load_pem_x509_certificate((tmp_path / "foo.crt").read_bytes())
        replay = step("ca", "certificate", "foo.internal", "foo2.crt", "foo2.key", "--token",
                      token, check=False)
        assert replay.returncode == 1 and "token already used" in replay.stderr

        step("ca", "renew", "--force", "foo.crt", "foo.key")
        renewed = x509.load_pem_x509_certificate((tmp_path / "foo.crt").read_bytes())
        assert renewed.serial_number != issued.serial_number
        step("ca", "revoke", str(renewed.serial_number), "--password-file", str(password))
        again = step("ca", "renew", "--force", "foo.crt", "foo.key", check=False)
        assert again.returncode == 1 and "certificate has been revoked" in again.stderr

    with psycopg.connect(pg.url(), connect_timeout=10) as conn:
        serials = {int(row[0]) for row in conn.execute("SELECT serial FROM x509_certs")}
        revoked = {int(row[0]) for row in conn.execute("SELECT serial FROM revoked_x509_certs")}
    assert {issued.serial_number, renewed.serial_number} <= serials
    assert revoked == {renewed.serial_number}
