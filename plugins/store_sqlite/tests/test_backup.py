"""``stepca-store-sqlite backup|restore``: a backup taken while the CA issues and revokes,
restored under a fresh CA, holds the certificates, the revocations and the spent tokens."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from stepca.testing.process import StepCAProcess, free_port, run_step, scripts_dir
from stepca_store_sqlite import SQLiteStore

pytestmark = pytest.mark.e2e


def store_tool(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(scripts_dir() / "stepca-store-sqlite"), *args],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"stepca-store-sqlite {args} exited {result.returncode}: "
                             f"{result.stderr}")
    return result


def read(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ocsp_status(http: str, leaf: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    body = (ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
            .public_bytes(serialization.Encoding.DER))
    request = urllib.request.Request(f"{http}/ocsp", data=body,
                                     headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return ocsp.load_der_ocsp_response(response.read()).certificate_status


def test_online_backup_restored_into_a_fresh_ca(tmp_path):
    port, http_port = free_port(), free_port()
    http = f"http://127.0.0.1:{http_port}"
    password = tmp_path / "password.txt"
    password.write_text("p4ss\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env = {**base, "STEPPATH": str(tmp_path / "ca")}

    def step(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step(*args, env=env, cwd=tmp_path, check=check)

    step("ca", "init", "--name", "Backup", "--provisioner", "admin", "--dns", "127.0.0.1",
         "--address", f"127.0.0.1:{port}", "--password-file", str(password))
    ca_json = tmp_path / "ca" / "config" / "ca.json"
    config = json.loads(ca_json.read_text())
    config["insecureAddress"] = f"127.0.0.1:{http_port}"
    config["crl"] = {"enabled": True, "generateOnRevoke": True, "idpURL": f"{http}/crl"}
    config["ocsp"] = {"enabled": True, "url": f"{http}/ocsp"}
    ca_json.write_text(json.dumps(config, indent="\t"))
    root = tmp_path / "ca" / "certs" / "root_ca.crt"
    intermediate = read(tmp_path / "ca" / "certs" / "intermediate_ca.crt")

    with StepCAProcess(ca_json, password_file=password, root=root, port=port, env=env):
        for name in ("kept", "gone"):
            step("ca", "certificate", name, f"{name}.crt", f"{name}.key",
                 "--provisioner-password-file", str(password))
        step("ca", "revoke", "--cert", "gone.crt", "--key", "gone.key")
        token = step("ca", "token", "spent", "--provisioner-password-file",
                     str(password)).stdout.strip()
        step("ca", "certificate", "spent", "spent.crt", "spent.key", "--token", token)
        store_tool("backup", str(ca_json), str(tmp_path / "backup.db"))  # the CA keeps running
    backup = tmp_path / "backup.db"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.glob("backup.db*")) == ["backup.db"]  # one file

    # A fresh CA: the same PKI files and address, a new STEPPATH, the backup as its database.
    fresh = tmp_path / "fresh"
    for folder in ("certs", "secrets", "config"):
        shutil.copytree(tmp_path / "ca" / folder, fresh / folder)
    fresh_json = fresh / "config" / "ca.json"
    config["db"]["dataSource"] = str(fresh / "db" / "stepca.db")
    fresh_json.write_text(json.dumps(config, indent="\t"))
    store_tool("restore", str(backup), str(fresh_json))
    restored = fresh / "db" / "stepca.db"
    assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    env["STEPPATH"] = str(fresh)

    kept, gone, spent = (read(tmp_path / f"{n}.crt") for n in ("kept", "gone", "spent"))
    with StepCAProcess(fresh_json, password_file=password, root=fresh / "certs" / "root_ca.crt",
                       port=port, env=env):
        refused = step("ca", "renew", "--force", "gone.crt", "gone.key", check=False)
        assert refused.returncode != 0 and "revoked" in refused.stderr
        step("ca", "renew", "--force", "kept.crt", "kept.key")
        replay = step("ca", "certificate", "spent", "again.crt", "again.key", "--token", token,
                      check=False)
        assert replay.returncode != 0 and "token already used" in replay.stderr
        assert not (tmp_path / "again.crt").exists()

        with urllib.request.urlopen(f"{http}/crl", timeout=30) as response:
            crl = x509.load_der_x509_crl(response.read())
        assert crl.get_revoked_certificate_by_serial_number(gone.serial_number) is not None
        assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None
        assert ocsp_status(http, gone, intermediate) == ocsp.OCSPCertStatus.REVOKED
        assert ocsp_status(http, kept, intermediate) == ocsp.OCSPCertStatus.GOOD

        store = SQLiteStore(restored)
        try:
            for certificate in (kept, gone, spent):
                found = store.get_certificate(certificate.serial_number)
                assert found is not None and found[0] == certificate
            assert store.is_revoked(gone.serial_number)
        finally:
            store.close()


def sqlite_ca_json(tmp_path: Path, database: Path, kind: str = "sqlite") -> Path:
    from stepca.testing import make_pki

    pki = make_pki(tmp_path / "pki")
    return pki.config(tmp_path / "run", db={"type": kind, "dataSource": str(database)})


def test_refusals_change_nothing(tmp_path):
    database = tmp_path / "db" / "stepca.db"
    ca_json = sqlite_ca_json(tmp_path, database)
    SQLiteStore(database).close()
    target = tmp_path / "backup.db"
    target.write_bytes(b"keep me")

    exists = store_tool("backup", str(ca_json), str(target), check=False)
    assert exists.returncode == 1 and "pass --force" in exists.stderr
    assert target.read_bytes() == b"keep me"

    nowhere = store_tool("backup", str(ca_json), str(tmp_path / "no" / "backup.db"), check=False)
    assert nowhere.returncode == 1 and "is not a folder" in nowhere.stderr

    not_sqlite = tmp_path / "not.db"
    sqlite3.connect(not_sqlite).close()  # an empty SQLite file: not a stepca database
    before = database.read_bytes()
    foreign = store_tool("restore", str(not_sqlite), str(ca_json), "--force", check=False)
    assert foreign.returncode == 1 and "not a stepca database" in foreign.stderr
    garbage = store_tool("restore", str(target), str(ca_json), "--force", check=False)
    assert garbage.returncode == 1 and "not a usable SQLite database" in garbage.stderr

    store_tool("backup", str(ca_json), str(target), "--force")
    occupied = store_tool("restore", str(target), str(ca_json), check=False)
    assert occupied.returncode == 1 and "pass --force" in occupied.stderr
    assert database.read_bytes() == before

    other = sqlite_ca_json(tmp_path / "pg", tmp_path / "pg.db", kind="postgresql")
    wrong = store_tool("backup", str(other), str(tmp_path / "pg-backup.db"), check=False)
    assert wrong.returncode == 1 and "not 'sqlite'" in wrong.stderr
    assert not list(tmp_path.glob(".*partial"))
