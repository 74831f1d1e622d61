"""Two `step-ca` instances of one CA (one PKI, the same ca.json but for the address, one
PostgreSQL database) act as one: a certificate issued by A renews at B, a token is spent once
across both, a revocation at A is seen by B at once, `kill -9` of A loses no certificate a client
received, and a PostgreSQL restart under load gives no wrong answer.

Every wait has a deadline; no outcome depends on timing: where requests race, every order they
may take has one right answer, and the test checks that answer."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from stepca.testing import make_csr, make_token
from stepca.testing.http import RunningCA, another_instance, running_ca
from stepca.testing.postgres import PostgresCluster, postgres_cluster, process_alive
from stepca.testing.process import run_step, wait_for
from stepca_store_postgresql import PostgreSQLStore

pytestmark = pytest.mark.e2e

REQUEST_SECONDS = 60.0  # well above the store's wait for a pooled connection (POOL_WAIT)
THREADS = 4
HOLDS = 4  # PostgreSQL's max_prepared_transactions in the restart test


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@dataclass
class Pair:
    """Instances A and B of one CA, its database, and a store of our own reading it."""

    a: RunningCA
    b: RunningCA
    db: dict[str, Any]
    url: str
    store: PostgreSQLStore
    tmp: Path
    intermediate: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self.intermediate = x509.load_pem_x509_certificate(
            (self.a.pki.steppath / "certs" / "intermediate_ca.crt").read_bytes())

    def stored(self) -> list[x509.Certificate]:
        """Every certificate the database holds."""
        with psycopg.connect(self.url, connect_timeout=10) as conn:
            rows = conn.execute("SELECT der FROM x509_certs").fetchall()
        return [x509.load_der_x509_certificate(bytes(row[0])) for row in rows]

    def assert_stored_and_chained(self, certificate: x509.Certificate) -> None:
        certificate.verify_directly_issued_by(self.intermediate)
        found = self.store.get_certificate(certificate.serial_number)
        assert found is not None and found[0] == certificate, \
            f"certificate {certificate.serial_number} was answered but is not in the database"


@pytest.fixture
def pair(pg: PostgresCluster, tmp_path: Path) -> Iterator[Pair]:
    database = f"two_{secrets.token_hex(4)}"  # each test its own, so counts are its own
    pg.psql(f'CREATE DATABASE "{database}"', database="postgres")
    db = {"type": "postgresql", "dataSource": pg.dsn, "database": database}
    ca_json = {"db": db, "crl": {"enabled": True, "generateOnRevoke": True},
               "ocsp": {"enabled": True}}
    # threads: what a store that waits on a database server needs (docs/writing-a-plugin.md);
    # one event loop would stall every connection of a worker while one waits for the database
    with running_ca(tmp_path / "a", ca_json=ca_json, threads=THREADS) as a, \
            another_instance(a, tmp_path / "b") as b:
        store = PostgreSQLStore.from_config(db, steppath=tmp_path)
        try:
            yield Pair(a, b, db, pg.url(database), store, tmp_path)
        finally:
            store.close()


# -- clients ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.json()["crt"].encode())


def connection(ca: RunningCA, client: Path | None = None) -> http.client.HTTPSConnection:
    """A connection to ``ca`` (TLS done), with ``client``'s certificate chain and key
    (``<client>.crt``, ``<client>.key``) for mutual TLS."""
    context = ca.context()
    if client is not None:
        context.load_cert_chain(client.with_suffix(".crt"), client.with_suffix(".key"))
    conn = http.client.HTTPSConnection("127.0.0.1", ca.port, context=context,
                                       timeout=REQUEST_SECONDS)
    conn.connect()
    return conn


def send(conn: http.client.HTTPSConnection, method: str, path: str, body: bytes = b"", *,
         content_type: str = "application/json") -> Answer:
    try:
        conn.request(method, path, body=body or None,
                     headers={"Content-Type": content_type, "Connection": "close"})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      response.read())
    finally:
        conn.close()


def call(ca: RunningCA, method: str, path: str, body: bytes = b"", *, client: Path | None = None,
         content_type: str = "application/json") -> Answer:
    return send(connection(ca, client), method, path, body, content_type=content_type)


def sign_request(ca: RunningCA, subject: str) -> bytes:
    """A /sign body: a fresh key's CSR and a token for ``subject``."""
    csr, _ = make_csr(subject)
    token = make_token(ca.pki, subject, audience=f"{ca.process.url}/1.0/sign")
    return json.dumps({"csr": csr, "ott": token}).encode()


def issue(ca: RunningCA, subject: str, folder: Path) -> tuple[x509.Certificate, Path]:
    """A certificate for ``subject`` from ``ca``, saved as ``folder/<subject>.crt`` (with the
    intermediate) and ``.key``, ready for mutual TLS."""
    csr, key = make_csr(subject)
    token = make_token(ca.pki, subject, audience=f"{ca.process.url}/1.0/sign")
    answer = call(ca, "POST", "/1.0/sign", json.dumps({"csr": csr, "ott": token}).encode())
    assert answer.status == 201, answer.body
    files = folder / subject
    files.with_suffix(".crt").write_text(answer.json()["crt"] + answer.json()["ca"])
    files.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return answer.certificate(), files


def step_env(pair: Pair, ca: RunningCA) -> tuple[dict[str, str], Path]:
    password = pair.tmp / "provisioner-password"
    password.write_bytes(ca.pki.password + b"\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return {**base, "STEPPATH": str(pair.tmp / "step"), "STEP_CA_URL": ca.process.url,
            "STEP_ROOT": str(ca.root)}, password


def logged(ca: RunningCA, method: str, route: str, status: int) -> int:
    """How many requests to ``route`` (``/route`` or ``/1.0/route``) ``ca``'s access log shows
    answered so."""
    return len(re.findall(rf'"{method} (?:/1\.0)?/{re.escape(route)} HTTP/1.1" {status} ',
                          ca.process.logs()))


# -- a. renewal at the other instance ----------------------------------------------------------


def test_a_certificate_issued_by_a_renews_at_b(pair: Pair) -> None:
    env, password = step_env(pair, pair.a)

    def step(*args: str, check: bool = True) -> Any:
        return run_step(*args, env=env, check=check, cwd=pair.tmp)

    step("ca", "certificate", "renew.example", "renew.crt", "renew.key", "--password-file",
         str(password))
    issued = x509.load_pem_x509_certificate((pair.tmp / "renew.crt").read_bytes())
    assert logged(pair.a, "POST", "sign", 201) == 1
    step("ca", "renew", "--force", "--ca-url", pair.b.process.url, "renew.crt", "renew.key")
    renewed = x509.load_pem_x509_certificate((pair.tmp / "renew.crt").read_bytes())
    assert renewed.serial_number != issued.serial_number
    assert renewed.subject == issued.subject and renewed.public_key() == issued.public_key()
    # B renewed it, A saw nothing of it
    assert logged(pair.b, "POST", "renew", 201) == 1
    assert logged(pair.a, "POST", "renew", 201) == 0
    for certificate in (issued, renewed):
        pair.assert_stored_and_chained(certificate)


# -- b. one token, two instances, at once --------------------------------------------------------


def test_one_token_fired_at_a_and_b_at_once_gives_one_certificate(pair: Pair) -> None:
    for round_ in range(5):
        subject = f"race-{round_}.example"
        body = sign_request(pair.a, subject)
        # both connections are open (TLS done) before either sends, then both send together
        conns = [connection(pair.a), connection(pair.b)]
        start = threading.Barrier(2, timeout=10)

        def fire(conn: http.client.HTTPSConnection) -> Answer:
            start.wait()
            return send(conn, "POST", "/1.0/sign", body)

        with ThreadPoolExecutor(2) as pool:
            answers = [f.result(REQUEST_SECONDS) for f in [pool.submit(fire, c) for c in conns]]
        assert sorted(a.status for a in answers) == [201, 401], answers
        (won,) = [a for a in answers if a.status == 201]
        (lost,) = [a for a in answers if a.status == 401]
        assert lost.json()["message"].endswith("token already used."), lost.body
        cert = won.certificate()
        named = [c for c in pair.stored()
                 if c.subject.rfc4514_string() == f"CN={subject}"]
        assert named == [cert]


# -- c. revoked at A, refused at B -----------------------------------------------------------------


def ocsp_status(pair: Pair, ca: RunningCA, certificate: x509.Certificate) -> ocsp.OCSPResponse:
    request = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, pair.intermediate, hashes.SHA1()).build()  # noqa: S303 - RFC 6960's CertID
    answer = call(ca, "POST", "/ocsp", request.public_bytes(serialization.Encoding.DER),
                  content_type="application/ocsp-request")
    assert answer.status == 200, answer.body
    response = ocsp.load_der_ocsp_response(answer.body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == certificate.serial_number
    return response


def crl_at(pair: Pair, ca: RunningCA) -> x509.CertificateRevocationList:
    answer = call(ca, "GET", "/1.0/crl")
    assert answer.status == 200, answer.body
    crl = x509.load_der_x509_crl(answer.body)
    assert crl.is_signature_valid(pair.intermediate.public_key())
    return crl


def test_a_certificate_revoked_at_a_is_refused_renewal_at_b_and_b_shows_it(pair: Pair) -> None:
    env, password = step_env(pair, pair.a)

    def step(*args: str, check: bool = True) -> Any:
        return run_step(*args, env=env, check=check, cwd=pair.tmp)

    step("ca", "certificate", "gone.example", "gone.crt", "gone.key", "--password-file",
         str(password))
    cert = x509.load_pem_x509_certificate((pair.tmp / "gone.crt").read_bytes())
    serial = cert.serial_number
    assert ocsp_status(pair, pair.b, cert).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert crl_at(pair, pair.b).get_revoked_certificate_by_serial_number(serial) is None

    step("ca", "revoke", str(serial), "--password-file", str(password))  # at A
    assert logged(pair.a, "POST", "revoke", 200) == 1
    refused = step("ca", "renew", "--force", "--ca-url", pair.b.process.url, "gone.crt",
                   "gone.key", check=False)
    assert refused.returncode == 1 and "certificate has been revoked" in refused.stderr
    assert logged(pair.b, "POST", "renew", 401) == 1
    assert x509.load_pem_x509_certificate((pair.tmp / "gone.crt").read_bytes()) == cert

    answer = ocsp_status(pair, pair.b, cert)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    listed = crl_at(pair, pair.b).get_revoked_certificate_by_serial_number(serial)
    assert listed is not None


# -- d. kill -9 of A in the middle of a burst ----------------------------------------------------


def test_kill_9_of_a_during_a_burst_loses_no_certificate_a_client_received(pair: Pair) -> None:
    victims = pair.a.process.pids()  # the gunicorn master and its worker
    retention = pair.a.process.retention_pid()
    b_pids = pair.b.process.pids()
    jobs = [(ca, sign_request(ca, f"burst-{i}.example"))
            for i, ca in enumerate([pair.a, pair.b] * 30)]
    received: list[tuple[RunningCA, x509.Certificate]] = []
    failures: list[str] = []
    a_after_kill: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def kill_a() -> None:
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        killed.set()

    def run(ca: RunningCA, body: bytes) -> None:
        try:
            answer = call(ca, "POST", "/1.0/sign", body)
        except (OSError, http.client.HTTPException) as exc:  # A is gone: refused, reset, cut
            with lock:
                if ca is pair.a and killed.is_set():
                    a_after_kill.append(type(exc).__name__)
                else:
                    failures.append(f"{ca.port}: {exc!r}")
            return
        with lock:
            if answer.status != 201:
                failures.append(f"{ca.port}: {answer.status} {answer.body!r}")
                return
            received.append((ca, answer.certificate()))
            if ca is pair.a and not killed.is_set() and \
                    sum(1 for c, _ in received if c is pair.a) == 5:
                kill_a()  # the fifth certificate A gave: mid-burst, whatever the timing

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(run, ca, body) for ca, body in jobs]:
            future.result(REQUEST_SECONDS * 2)
    try:
        assert killed.is_set(), failures
        wait_for(lambda: not any(process_alive(pid) for pid in victims), "A's processes to die",
                 timeout=15)
        assert not failures, failures
        assert a_after_kill, "no request to A was refused after the kill"
        from_b = [cert for ca, cert in received if ca is pair.b]
        assert len(from_b) == 30  # B answered every one of its requests
        for _, certificate in received:
            pair.assert_stored_and_chained(certificate)
        # B keeps serving, with the processes it had
        after, _ = issue(pair.b, "after-kill.example", pair.tmp)
        pair.assert_stored_and_chained(after)
        assert pair.b.process.pids() == b_pids
    finally:
        if retention is not None:  # it leaves by itself once its master is gone
            wait_for(lambda: not process_alive(retention), "A's retention process to exit",
                     timeout=15)


# -- e. a PostgreSQL restart under load ------------------------------------------------------------


@dataclass
class Load:
    """What the clients of the restart test saw."""

    issued: list[x509.Certificate] = field(default_factory=list)
    spent: list[bytes] = field(default_factory=list)
    """Bodies of /sign requests answered 201: their tokens are spent."""
    unavailable: int = 0
    wrong: list[str] = field(default_factory=list)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_answer(load: Load, what: str, answer: Answer, *, replay: bool = False) -> bool:
    """Record ``answer``; True when it is a success."""
    with load.lock:
        load.done += 1
        if answer.status == 503:
            message = answer.json().get("message", "")
            if "database" not in message or "retry-after" not in answer.headers:
                load.wrong.append(f"{what}: 503 without the database named or Retry-After: "
                                  f"{answer.headers} {answer.body!r}")
            load.unavailable += 1
            return False
        if replay:
            if answer.status != 401 or not answer.json()["message"].endswith(
                    "token already used."):
                load.wrong.append(f"{what}: a replayed token got {answer.status} "
                                  f"{answer.body!r}")
            return False
        if answer.status != 201:
            load.wrong.append(f"{what}: {answer.status} {answer.body!r}")
            return False
        load.issued.append(answer.certificate())
        return True


def client_loop(load: Load, ca: RunningCA, renewable: Path, index: int,
                stop: threading.Event) -> None:
    """Sign, renew (mutual TLS with ``renewable``) and replay spent tokens, until ``stop``."""
    step = 0
    while not stop.is_set():
        step += 1
        what = f"client {index} at {ca.port}, request {step}"
        try:
            with load.lock:
                replayed = load.spent[step % len(load.spent)] if load.spent else None
            if step % 5 == 0 and replayed is not None:
                body = replayed
                check_answer(load, f"{what} (replay)", call(ca, "POST", "/1.0/sign", body),
                             replay=True)
            elif step % 3 == 0:
                check_answer(load, f"{what} (renew)",
                             call(ca, "POST", "/1.0/renew", client=renewable))
            else:
                body = sign_request(ca, f"load-{index}-{step}.example")
                if check_answer(load, f"{what} (sign)", call(ca, "POST", "/1.0/sign", body)):
                    with load.lock:
                        load.spent.append(body)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:  # no answer
            with load.lock:
                load.done += 1
                load.wrong.append(f"{what}: {exc!r}")


def waiting_on_locks(pg: PostgresCluster, pair: Pair) -> int:
    """Requests of the CA instances blocked on a lock while spending their token."""
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       f"AND datname = '{pair.db['database']}' "
                       "AND query LIKE 'INSERT INTO used_ott %'", database="postgres"))


def test_a_postgresql_restart_under_load_gives_no_wrong_answer(pg: PostgresCluster,
                                                                pair: Pair) -> None:
    # a prepared transaction outlives its session and a restart: allow them (takes a restart)
    pg.psql(f"ALTER SYSTEM SET max_prepared_transactions = {HOLDS}")
    pg.restart()
    pids = (pair.a.process.pids(), pair.b.process.pids())
    renewables = [issue(ca, f"renewable-{i}.example", pair.tmp)[1]
                  for i, ca in enumerate([pair.a, pair.b, pair.a, pair.b])]
    load, stop = Load(), threading.Event()
    clients = [threading.Thread(target=client_loop, name=f"load-{i}", daemon=True,
                                args=(load, ca, renewables[i], i, stop))
               for i, ca in enumerate([pair.a, pair.b, pair.a, pair.b])]

    def done() -> int:
        with load.lock:
            return load.done

    for client in clients:
        client.start()
    try:
        wait_for(lambda: done() >= 12, "the load to get going", timeout=120)
        # Requests caught inside a transaction by the restart, whatever the timing: a lock of
        # ours holds every token spend (sign, replay) until the server has gone down under
        # them. A prepared transaction holds it: a session's lock would go as the shutdown
        # ends that session, and a waiter might commit before its own session ends.
        pg.psql("BEGIN; LOCK TABLE used_ott IN SHARE ROW EXCLUSIVE MODE; "
                "PREPARE TRANSACTION 'hold-token-spends'", database=pair.db["database"])
        try:
            wait_for(lambda: waiting_on_locks(pg, pair) >= 2, "requests to wait on the lock",
                     timeout=60)
            pg.restart()  # the clients keep sending throughout
        finally:
            pg.psql("ROLLBACK PREPARED 'hold-token-spends'", database=pair.db["database"])
        restarted_at = done()
        wait_for(lambda: done() >= restarted_at + 24, "the load to go on after the restart",
                 timeout=240)
    finally:
        stop.set()
        for client in clients:
            client.join(REQUEST_SECONDS + 10)
    assert not any(client.is_alive() for client in clients)
    assert not load.wrong, load.wrong
    assert load.unavailable >= 2, "the requests in flight at the restart were not refused"

    for certificate in load.issued:
        pair.assert_stored_and_chained(certificate)
    # no spent token buys a second certificate, at either instance
    for i, body in enumerate(load.spent):
        ca = (pair.a, pair.b)[i % 2]
        check_answer(load, f"replay {i} at {ca.port}", call(ca, "POST", "/1.0/sign", body),
                     replay=True)
    assert not load.wrong, load.wrong
    # both issue and renew again, not restarted
    for ca in (pair.a, pair.b):
        after, files = issue(ca, f"after-restart-{ca.port}.example", pair.tmp)
        pair.assert_stored_and_chained(after)
        renewed = call(ca, "POST", "/1.0/renew", client=files)
        assert renewed.status == 201, renewed.body
        pair.assert_stored_and_chained(renewed.certificate())
    assert (pair.a.process.pids(), pair.b.process.pids()) == pids
