"""step-ca on the PostgreSQL store, driven by the real `step`: a certificate issued, renewed
and revoked is where the database says, and the CRL the CA serves lists the revocation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from stepca.testing.http import running_ca
from stepca.testing.postgres import PostgresCluster, postgres_cluster
from stepca.testing.process import run_step
from stepca_store_postgresql import PostgreSQLStore

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


def test_step_issues_renews_and_revokes_on_postgresql(pg: PostgresCluster,
                                                     tmp_path: Path) -> None:
    db = {"type": "postgresql", "dataSource": pg.dsn, "database": pg.database}
    ca_json = {"db": db, "crl": {"enabled": True, "generateOnRevoke": True}}
    with running_ca(tmp_path / "server", ca_json=ca_json) as ca:
        password = tmp_path / "password.txt"
        password.write_bytes(ca.pki.password + b"\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        env = {**base, "STEPPATH": str(tmp_path / "step"),
               "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}

        def step(*args: str, check: bool = True):  # type: ignore[no-untyped-def]
            return run_step(*args, env=env, check=check, cwd=tmp_path)

        def read(name: str) -> x509.Certificate:
            return x509.load_pem_x509_certificate((tmp_path / name).read_bytes())

        step("ca", "certificate", "pg.example", "pg.crt", "pg.key", "--password-file",
             str(password))
        issued = read("pg.crt")
        step("ca", "renew", "--force", "pg.crt", "pg.key")
        renewed = read("pg.crt")
        assert renewed.serial_number != issued.serial_number

        store = PostgreSQLStore.from_config(db, steppath=tmp_path)
        try:
            for cert in (issued, renewed):
                found = store.get_certificate(cert.serial_number)
                assert found is not None and found[0] == cert
            step("ca", "revoke", str(renewed.serial_number), "--password-file", str(password))
            assert store.is_revoked(renewed.serial_number)
            crl = store.current_crl()
            assert crl is not None
            listed = x509.load_der_x509_crl(crl.der)
            assert listed.get_revoked_certificate_by_serial_number(renewed.serial_number)
        finally:
            store.close()
        refused = step("ca", "renew", "--force", "pg.crt", "pg.key", check=False)
        assert refused.returncode == 1 and "certificate has been revoked" in refused.stderr
