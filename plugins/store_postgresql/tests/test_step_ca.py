"""step-ca on the PostgreSQL store, driven by the real `step`: a certificate issued, renewed
and revoked is where the database says, and the CRL the CA serves lists the revocation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from stepca.testing.http import RunningCA, read_response, running_ca, sign_body
from stepca.testing.postgres import PostgresCluster, postgres_cluster
from stepca.testing.process import run_step
from stepca_store_postgresql import PostgreSQLStore
from stepca_store_postgresql.store import POOL_WAIT, RECONNECT_FOR

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


def _send(ca: RunningCA, request: bytes) -> tuple[int, dict[str, str], bytes]:
    # a request may wait POOL_WAIT for a connection before it answers 503
    with ca.connect(timeout=POOL_WAIT + 20) as sock:
        sock.sendall(request)
        status, headers, body, _ = read_response(sock)
        return status, headers, body


def _post(ca: RunningCA, path: str, body: bytes,
          content_type: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    return _send(ca, (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      f"{content_type}\r\nContent-Length: {len(body)}\r\nConnection: close"
                      "\r\n\r\n").encode() + body)


def test_while_postgresql_is_down_requests_answer_503_and_spend_nothing(
        pg: PostgresCluster, tmp_path: Path) -> None:
    db = {"type": "postgresql", "dataSource": pg.dsn, "database": pg.database}
    ca_json = {"db": db, "crl": {"enabled": True}, "ocsp": {"enabled": True}}
    # three threads: the requests below wait for a connection at the same time, not in turn
    with running_ca(tmp_path / "server", ca_json=ca_json, threads=3) as ca:
        status, _, issued_body = _post(ca, "/1.0/sign", sign_body(ca, "before.example"))
        assert status == 201
        issued = x509.load_pem_x509_certificate(json.loads(issued_body)["crt"].encode())
        intermediate = x509.load_pem_x509_certificate(
            (ca.pki.steppath / "certs" / "intermediate_ca.crt").read_bytes())
        ocsp_request = ocsp.OCSPRequestBuilder().add_certificate(
            issued, intermediate, hashes.SHA256()).build().public_bytes(
            serialization.Encoding.DER)
        during = sign_body(ca, "during.example")
        pg.stop()
        try:
            with ThreadPoolExecutor(3) as pool:
                signed = pool.submit(_post, ca, "/1.0/sign", during)
                checked = pool.submit(_post, ca, "/ocsp", ocsp_request,
                                      "application/ocsp-request")
                listed = pool.submit(_send, ca, b"GET /1.0/crl HTTP/1.1\r\nHost: x\r\n"
                                                b"Connection: close\r\n\r\n")
            status, headers, body = signed.result()
            assert (status, headers.get("retry-after")) == (503, "5")
            assert json.loads(body) == {"status": 503, "message": (
                "The certificate authority is temporarily unavailable: its database cannot "
                "be reached; try again shortly.")}
            status, _, body = checked.result()
            assert status == 200  # RFC 6960: an OCSP status, not an HTTP one
            assert ocsp.load_der_ocsp_response(body).response_status == \
                ocsp.OCSPResponseStatus.TRY_LATER
            assert listed.result()[0] == 503
        finally:
            pg.start()
        # the same pools serve again, without a restart of step-ca, and the token the refused
        # request carried was not spent
        deadline = time.monotonic() + RECONNECT_FOR + 60
        while (answer := _post(ca, "/1.0/sign", during))[0] == 503:  # not reconnected yet
            assert time.monotonic() < deadline, "step-ca did not reconnect"
        assert answer[0] == 201, answer
        status, _, body = _post(ca, "/ocsp", ocsp_request, "application/ocsp-request")
        answer = ocsp.load_der_ocsp_response(body)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        log = ca.process.logs()
        assert "is unavailable" in log and pg.password not in log
