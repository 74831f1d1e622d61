"""What a large store costs: a real step-ca measured on an empty database, then on one holding
1,000,000 issued certificates and 100,000 revocations.

    .venv/bin/python benchmarks/growth.py [--store sqlite|postgresql] [--certificates 1000000]
                                          [--revocations 100000] [--clients 64] [--duration 10]
                                          [--pairs 3]

For the empty store and again for the full one it prints the CA's start-up (process start
to the first successful GET /health; once with the CRL the fill left stale, once more with it
current), POST /1.0/revoke's latency (each rebuilds the CRL: ``generateOnRevoke``), the CRL's
size and GET /crl's latency, the CRL's build in-process (reading the revocations, then building
and signing), OCSP answers' latency (POST /ocsp for serials not asked before, so none comes
from the answer cache) and the database's size. Then issuances/s through POST /1.0/sign (the
load of benchmarks/issuance.py: 64 keep-alive HTTPS clients, unique tokens and CSRs made before
each window) in windows alternating between a second, empty database and the full one, each
with its own step-ca on the one PKI. Target: the full store within 10% of the empty one.

The filler writes what the store itself writes, faster (benchmarks/README.md says how): the
certificates are renewals of certificates the CA issued in the empty run (the CA's own
``CertificateIssuer.reissue``: real signatures, new random serials), signed in a process pool;
the rows come from ``stepca.sqlstore.certificate_row`` and ``revocation_row`` and go in with
the store's own INSERT statements (SQLite, ``executemany``) or COPY (PostgreSQL) in large
transactions. The CA is stopped meanwhile; the schema is the one the CA made at its first start.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (
    CA,
    HOST,
    STORES,
    HTTPSConnection,
    LoadResult,
    jobs_needed,
    request_bytes,
    run_load,
    sign_body,
    sign_job_maker,
    wait_for_workers,
)

from stepca.testing import TestPKI, make_pki, make_token
from stepca.testing.process import StepCAProcess, free_port

CRL = {"enabled": True, "generateOnRevoke": True}
CHUNK = 5000  # certificates signed per pool task
TRANSACTION_ROWS = 50_000  # rows per transaction of the filler
OCSP_REQUESTS = 400
REVOCATIONS_TIMED = 5
TEMPLATES = 64  # certificates issued through the CA, which the filler renews
CRL_GETS = 5
# RFC 5280 reason codes a revocation carries, drawn in turn (7 is unassigned)
REASON_CODES = (0, 1, 4, 5, 3, 9)


@dataclass
class Figures:
    """What one state of the store (empty or full) measured."""

    label: str
    certificates: int = 0
    revocations: int = 0
    start_seconds: float = 0.0
    restart_seconds: float = 0.0
    revoke_ms: list[float] = field(default_factory=list)
    crl_bytes: int = 0
    crl_entries: int = 0
    crl_get_ms: list[float] = field(default_factory=list)
    crl_read_seconds: float = 0.0
    crl_build_seconds: float = 0.0
    ocsp_ms: list[float] = field(default_factory=list)
    database_bytes: int = 0
    database_detail: str = ""


# -- the CA on a database that outlives its processes ----------------------------------------


@dataclass
class Database:
    """One database and the ca.json of a step-ca on it (the PKI is the run's)."""

    pki: TestPKI
    tmp: Path
    store: str
    config: Path
    port: int
    password: Path
    sqlite_path: Path | None = None
    conninfo: str | None = None
    database_pid: int | None = None

    @contextmanager
    def running(self, figures: Figures | None = None) -> Iterator[CA]:
        """step-ca on this database; its start-up time goes into ``figures``."""
        root = self.pki.steppath / "certs" / "root_ca.crt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        process = StepCAProcess(self.config, password_file=self.password, root=root,
                                port=self.port, env=env,
                                log_path=self.config.with_name("step-ca.log"))
        started = time.perf_counter()
        process.start(timeout=600)  # polls GET /health every 0.1 s
        if figures is not None:
            figures.start_seconds = time.perf_counter() - started
        try:
            ca = CA(self.pki, [process], root, self.tmp, self.database_pid)
            wait_for_workers(ca, ca.master, None)
            yield ca
        finally:
            process.stop()

    def store_object(self) -> Any:
        """The store plugin's own class on this database, in this process."""
        if self.store == "sqlite":
            from stepca_store_sqlite.store import SQLiteStore

            return SQLiteStore(self.sqlite_path)
        from stepca_store_postgresql.store import PostgreSQLStore

        return PostgreSQLStore(self.conninfo)

    def connect(self) -> Any:
        """A DB-API connection of the benchmark's own."""
        if self.store == "sqlite":
            import sqlite3

            return sqlite3.connect(self.sqlite_path, isolation_level=None)
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True)


@dataclass
class Bench:
    growing: Database
    """Measured empty, filled, measured again."""
    control: Database
    """Stays empty: the issuance windows alternate between it and the full one."""


@contextmanager
def setup(store: str) -> Iterator[Bench]:
    """One PKI; two databases on one SQLite folder or one private PostgreSQL server."""
    with tempfile.TemporaryDirectory(prefix="stepca-growth-") as folder, ExitStack() as stack:
        tmp = Path(folder)
        pki = make_pki(tmp / "pki")
        password = tmp / "password"
        password.write_bytes(pki.password)
        pg = None
        if store == "postgresql":
            from stepca.testing.postgres import postgres_cluster

            pg = stack.enter_context(postgres_cluster())
        databases = []
        for name in ("growing", "control"):
            port, sqlite_path, conninfo = free_port(), None, None
            if pg is not None:
                database = pg.database if name == "growing" else f"{pg.database}_{name}"
                if name != "growing":
                    pg.psql(f'CREATE DATABASE "{database}"', database="postgres")
                db = {"type": "postgresql", "dataSource": pg.dsn, "database": database}
                conninfo = pg.url(database)
            else:
                sqlite_path = tmp / name / "stepca.db"
                db = {"type": "sqlite", "dataSource": str(sqlite_path)}
            config = pki.config(tmp / name, address=f"{HOST}:{port}", db=db, crl=CRL,
                                ocsp={"enabled": True})
            databases.append(Database(pki, tmp, store, config, port, password, sqlite_path,
                                      conninfo, pg.pid if pg is not None else None))
        yield Bench(*databases)


# -- what is measured against the running CA ---------------------------------------------------


def issuance(ca: CA, clients: int, duration: float) -> LoadResult:
    """One window of benchmarks/issuance.py's load: ``clients`` keep-alive connections, unique
    tokens and CSRs made in the client processes before the window, 1 s of warm-up."""
    per_client = jobs_needed(clients, duration, 1.0, 2000.0)
    return run_load(ca, make_jobs=sign_job_maker(ca), clients=clients, per_client=per_client,
                    keepalive=True, processes=min(4, 2 * (os.cpu_count() or 1)),
                    duration=duration, warmup=1.0)


def compare_issuance(bench: Bench, pairs: int, clients: int,
                     duration: float) -> list[tuple[LoadResult, LoadResult]]:
    """Windows on the empty database and on the full one in alternation, both CAs up (the
    idle one costs nothing): the machine's speed drifts between minutes, not within a pair.
    Every other pair starts with the full one, so that neither always runs second."""
    results = []
    with bench.control.running() as empty_ca, bench.growing.running() as full_ca:
        for index in range(pairs):
            if index % 2 == 0:
                empty = issuance(empty_ca, clients, duration)
                full = issuance(full_ca, clients, duration)
            else:
                full = issuance(full_ca, clients, duration)
                empty = issuance(empty_ca, clients, duration)
            print(f"  pair {index + 1}: empty {empty.rate:,.0f}/s, full {full.rate:,.0f}/s",
                  flush=True)
            results.append((empty, full))
    return results


def _connection(ca: CA) -> HTTPSConnection:
    import ssl

    return HTTPSConnection(ca.port, ssl.create_default_context(cafile=str(ca.root)))


def _exchange(conn: HTTPSConnection, request: bytes, expect: int) -> tuple[bytes, float]:
    started = time.perf_counter()
    status, body, _ = conn.exchange(request)
    elapsed = time.perf_counter() - started
    if status != expect:
        raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    return body, elapsed


def revocations_and_crl(ca: CA, figures: Figures) -> None:
    """Issue ``TEMPLATES`` certificates (the filler renews them), revoke a few of them one by
    one (each rebuilds the CRL), then fetch the CRL."""
    from cryptography import x509

    conn = _connection(ca)
    try:
        audience = f"https://{HOST}:{ca.port}"
        serials = []
        for i in range(TEMPLATES):
            body, _ = _exchange(conn, request_bytes(
                ca.port, "/1.0/sign", sign_body(ca.pki, f"{audience}/1.0/sign",
                                                f"service-{i}.example.com"), {}, True), 201)
            crt = json.loads(body)["crt"].encode()
            serials.append(x509.load_pem_x509_certificate(crt).serial_number)
        serials = serials[:REVOCATIONS_TIMED]
        bodies = [json.dumps({"serial": str(serial), "reasonCode": 1, "passive": True,
                              "ott": make_token(ca.pki, str(serial),
                                                audience=f"{audience}/1.0/revoke")}).encode()
                  for serial in serials]
        for body in bodies:
            _, elapsed = _exchange(conn, request_bytes(ca.port, "/1.0/revoke", body, {}, True),
                                   200)
            figures.revoke_ms.append(elapsed * 1000)
        for _ in range(CRL_GETS):
            crl, elapsed = _exchange(conn, request_bytes(ca.port, "/1.0/crl", b"", {}, True,
                                                         method="GET"), 200)
            figures.crl_get_ms.append(elapsed * 1000)
        figures.crl_bytes = len(crl)
        figures.crl_entries = len(x509.load_der_x509_crl(crl))
    finally:
        conn.close()


def ocsp_latency(ca: CA, database: Database, figures: Figures) -> None:
    """POST /ocsp, one request at a time on one kept-alive connection, for serials drawn from
    the database (half of them revoked, when there are revocations), each asked once."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    from stepca.ocsp_responder import issuer_hashes

    issuer = x509.load_pem_x509_certificate(
        (database.pki.steppath / "certs" / "intermediate_ca.crt").read_bytes())
    name_hash, key_hash = issuer_hashes(issuer, hashes.SHA1())
    conn = database.connect()
    try:
        half = OCSP_REQUESTS // 2
        revoked = [int(r[0]) for r in conn.execute(
            f"SELECT serial FROM revoked_x509_certs ORDER BY random() LIMIT {half}").fetchall()]
        good = [int(r[0]) for r in conn.execute(
            f"SELECT serial FROM x509_certs ORDER BY random() LIMIT "
            f"{OCSP_REQUESTS - len(revoked)}").fetchall()]
    finally:
        conn.close()
    serials = [s for pair in itertools.zip_longest(good, revoked) for s in pair if s is not None]
    requests = []
    for serial in serials:
        der = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            name_hash, key_hash, serial, hashes.SHA1()).build().public_bytes(Encoding.DER)
        head = (f"POST /ocsp HTTP/1.1\r\nHost: {HOST}:{ca.port}\r\n"
                f"Content-Type: application/ocsp-request\r\nContent-Length: {len(der)}\r\n\r\n")
        requests.append(head.encode() + der)
    https = _connection(ca)
    try:
        for request in requests:
            body, elapsed = _exchange(https, request, 200)
            if ocsp.load_der_ocsp_response(body).response_status != \
                    ocsp.OCSPResponseStatus.SUCCESSFUL:
                raise RuntimeError("an OCSP answer was not successful")
            figures.ocsp_ms.append(elapsed * 1000)
    finally:
        https.close()


def crl_build_in_process(database: Database, figures: Figures) -> None:
    """The CRL's build as the CA runs it, timed in this process: reading every revocation, then
    building and signing (``build_crl``); nothing is written."""
    from cryptography import x509

    from stepca.revocation_lists import build_crl
    from stepca.x509util import load_private_key

    issuer = x509.load_pem_x509_certificate(
        (database.pki.steppath / "certs" / "intermediate_ca.crt").read_bytes())
    key = load_private_key(
        (database.pki.steppath / "secrets" / "intermediate_ca_key").read_bytes(),
        database.pki.password)
    store = database.store_object()
    try:
        started = time.perf_counter()
        revoked = store.revoked_certificates()
        read = time.perf_counter()
        build_crl(1, issuer=issuer, key=key, revoked=revoked, now=datetime.now(UTC),
                  lifetime=timedelta(hours=24), idp_url="https://ca.example.com/1.0/crl")
        figures.crl_read_seconds = read - started
        figures.crl_build_seconds = time.perf_counter() - read
    finally:
        store.close()


def database_size(database: Database, figures: Figures) -> None:
    conn = database.connect()
    try:
        figures.certificates = conn.execute("SELECT COUNT(*) FROM x509_certs").fetchone()[0]
        figures.revocations = conn.execute(
            "SELECT COUNT(*) FROM revoked_x509_certs").fetchone()[0]
        if database.store == "sqlite":
            assert database.sqlite_path is not None
            files = [database.sqlite_path, Path(f"{database.sqlite_path}-wal")]
            figures.database_bytes = sum(p.stat().st_size for p in files if p.exists())
            tables = conn.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall() \
                if _has_dbstat(conn) else []
        else:
            figures.database_bytes = conn.execute(
                "SELECT pg_database_size(current_database())").fetchone()[0]
            tables = conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC").fetchall()
        figures.database_detail = ", ".join(f"{name} {size / 2**20:,.1f} MiB"
                                            for name, size in tables[:6])
    finally:
        conn.close()


def _has_dbstat(conn: Any) -> bool:
    """SQLite's dbstat table exists only where it was compiled in."""
    import sqlite3

    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1")
        return True
    except sqlite3.OperationalError:
        return False


def measure(database: Database, label: str) -> Figures:
    figures = Figures(label)
    print(f"[{label}] starting step-ca ...", flush=True)
    with database.running(figures) as ca:
        print(f"[{label}] up in {figures.start_seconds:.2f} s; revocations, CRL, OCSP ...",
              flush=True)
        revocations_and_crl(ca, figures)
        ocsp_latency(ca, database, figures)
    again = Figures(label)
    with database.running(again):  # the CRL stored by the revocations above is current now
        figures.restart_seconds = again.start_seconds
    crl_build_in_process(database, figures)
    database_size(database, figures)
    return figures


# -- the filler --------------------------------------------------------------------------------


_worker: dict[str, Any] = {}


def _init_signer(steppath: str, password: bytes, templates: list[bytes]) -> None:
    from cryptography import x509

    from stepca.issuance import CertificateIssuer
    from stepca.timeutil import utcnow
    from stepca.x509util import load_private_key

    intermediate = x509.load_pem_x509_certificate(
        (Path(steppath) / "certs" / "intermediate_ca.crt").read_bytes())
    signer = load_private_key(
        (Path(steppath) / "secrets" / "intermediate_ca_key").read_bytes(), password)
    # the CA's own issuer: reissue is what a renewal signs (new serial, the same extensions)
    _worker["issuer"] = CertificateIssuer(None, intermediates=(intermediate,),  # type: ignore[arg-type]
                                          signer=signer, backdate=timedelta(minutes=1),
                                          clock=utcnow)
    _worker["templates"] = [x509.load_der_x509_certificate(der) for der in templates]


def _sign_chunk(task: tuple[int, int, tuple[str, str, str]]) -> list[tuple[Any, ...]]:
    from stepca.sqlstore import certificate_row
    from stepca.store import ProvisionerRef

    start, count, ref = task
    issuer, templates = _worker["issuer"], _worker["templates"]
    provisioner = ProvisionerRef(*ref)
    now = datetime.now(UTC)
    rows = []
    for i in range(start, start + count):
        old = templates[i % len(templates)]
        rows.append(certificate_row(issuer.reissue(old, old.public_key(), rekey=False),
                                    provisioner, now))
    return rows


def templates_of(database: Database, count: int = TEMPLATES) -> tuple[list[bytes], tuple[str, str, str]]:
    """Certificates the CA issued in the empty run (each for its own key) and their
    provisioner."""
    conn = database.connect()
    try:
        rows = conn.execute(
            f"SELECT der, provisioner_id, provisioner_name, provisioner_type FROM x509_certs "
            f"WHERE provisioner_id IS NOT NULL LIMIT {count}").fetchall()
    finally:
        conn.close()
    if not rows:
        raise RuntimeError("the empty run issued no certificate to renew")
    return [bytes(r[0]) for r in rows], (rows[0][1], rows[0][2], rows[0][3])


def fill(database: Database, certificates: int, revocations: int) -> tuple[float, float]:
    """Add ``certificates`` certificates and revoke ``revocations`` of them; returns the
    seconds spent (signing and writing certificates, writing revocations)."""
    from stepca.sqlstore import POSTGRESQL, SQLITE, Statements, revocation_row
    from stepca.store import RevocationInfo

    templates, ref = templates_of(database)
    sql = Statements.for_dialect(SQLITE if database.store == "sqlite" else POSTGRESQL)
    tasks = [(start, min(CHUNK, certificates - start), ref)
             for start in range(0, certificates, CHUNK)]
    to_revoke: list[tuple[int, int]] = []  # (serial, not_after seconds)
    started = time.perf_counter()
    conn = database.connect()
    writer = _Writer(database.store, conn, sql.insert_certificate, "x509_certs",
                     ("serial", "der", "provisioner_id", "provisioner_name", "provisioner_type",
                      "not_before", "not_after", "issued_at"))
    processes = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(
            processes, initializer=_init_signer,
            initargs=(str(database.pki.steppath), database.pki.password, templates)) as pool:
        done = 0
        for rows in pool.imap_unordered(_sign_chunk, tasks):
            if len(to_revoke) < revocations:
                to_revoke.extend((int(r[0]), r[6]) for r in rows[:revocations - len(to_revoke)])
            writer.add(rows)
            done += len(rows)
            if done % 100_000 < CHUNK:
                print(f"  {done:,} certificates ({time.perf_counter() - started:.0f} s)",
                      flush=True)
    writer.flush()
    signed = time.perf_counter() - started
    now = datetime.now(UTC).replace(microsecond=0)
    writer = _Writer(database.store, conn, sql.insert_revocation, "revoked_x509_certs",
                     ("serial", "provisioner_id", "reason_code", "reason", "revoked_at",
                      "expires_at", "token_id", "mtls"))
    rows = [revocation_row(RevocationInfo(
        serial=serial, provisioner_id=ref[0], reason_code=REASON_CODES[i % len(REASON_CODES)],
        reason="", revoked_at=now - timedelta(seconds=len(to_revoke) - i),
        expires_at=datetime.fromtimestamp(not_after, UTC), token_id=secrets.token_hex(32)))
        for i, (serial, not_after) in enumerate(to_revoke)]
    writer.add(rows)
    writer.flush()
    if database.store == "postgresql":
        # revoke bumps the revocation mark once per revocation (docs/decisions/0029)
        conn.execute("UPDATE revocation_counter SET mark = mark + %s", (len(rows),))
        conn.execute("ANALYZE")  # as autovacuum would have by now
    conn.close()
    return signed, time.perf_counter() - started - signed


class _Writer:
    """Rows into one table in transactions of ``TRANSACTION_ROWS``: the store's own INSERT
    with executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, store: str, conn: Any, insert: str, table: str,
                 columns: tuple[str, ...]) -> None:
        self.store, self.conn, self.insert = store, conn, insert
        self.copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        self.pending: list[tuple[Any, ...]] = []

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        self.pending.extend(rows)
        if len(self.pending) >= TRANSACTION_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.store == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(self.insert, self.pending)
            self.conn.execute("COMMIT")
        else:
            with self.conn.transaction(), self.conn.cursor() as cursor, \
                    cursor.copy(self.copy) as copy:
                for row in self.pending:
                    copy.write_row(row)
        self.pending = []


# -- printing ----------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (f"median {statistics.median(values):,.1f} ms, p99 {p99:,.1f} ms, "
            f"max {max(values):,.1f} ms ({len(values)})")


def print_figures(both: list[Figures], pairs: list[tuple[LoadResult, LoadResult]]) -> None:
    print()
    for f in both:
        print(f"{f.label}: {f.certificates:,} certificates, {f.revocations:,} revocations")
        print(f"  step-ca start-up (to the first GET /health 200, polled every 0.1 s): "
              f"{f.start_seconds:.2f} s; again after the measurements (the stored CRL then "
              f"current): {f.restart_seconds:.2f} s")
        print(f"  POST /1.0/revoke:  {_ms(f.revoke_ms)} (each rebuilds the CRL)")
        print(f"  CRL:               {f.crl_entries:,} entries, {f.crl_bytes:,} bytes; "
              f"GET /1.0/crl {_ms(f.crl_get_ms)}")
        print(f"  CRL build in-process: read the revocations {f.crl_read_seconds:.3f} s, "
              f"build and sign {f.crl_build_seconds:.3f} s")
        print(f"  POST /ocsp:        {_ms(f.ocsp_ms)}")
        print(f"  database:          {f.database_bytes / 2**20:,.1f} MiB ({f.database_detail})")
    if not pairs:
        return
    print("issuance, POST /1.0/sign, windows in alternation (empty database first in odd pairs, "
          "the full one first in even pairs):")
    ratios = []
    for index, (empty, full) in enumerate(pairs, 1):
        ratio = full.rate / empty.rate if empty.rate else float("nan")
        ratios.append(ratio)
        print(f"  pair {index}: empty {empty.rate:,.0f}/s ({_cpu_us(empty):,.0f} µs CA CPU each, "
              f"p50/p99 {empty.latency(0.5):.1f}/{empty.latency(0.99):.1f} ms, {empty.errors} "
              f"errors); full {full.rate:,.0f}/s ({_cpu_us(full):,.0f} µs, "
              f"{full.latency(0.5):.1f}/{full.latency(0.99):.1f} ms, {full.errors} errors); "
              f"full/empty {ratio:.2f}")
    median = statistics.median(ratios)
    print(f"full/empty issuances/s, median of {len(ratios)} pairs: {median:.2f} (target: at "
          f"least 0.90): {'met' if median >= 0.9 else 'NOT met'}")
    # steadier than the rate on a shared machine: another process's load slows both alike
    cpu = statistics.median(_cpu_us(f) for _, f in pairs) / statistics.median(
        _cpu_us(e) for e, _ in pairs)
    print(f"full/empty CA CPU per issuance (medians): {cpu:.2f}")


def _cpu_us(result: LoadResult) -> float:
    return result.server_cpu_seconds / result.ok * 1e6 if result.ok else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=STORES, default="sqlite")
    parser.add_argument("--certificates", type=int, default=1_000_000,
                        help="certificates the filler adds (default 1,000,000)")
    parser.add_argument("--revocations", type=int, default=100_000,
                        help="of those, how many are revoked (default 100,000)")
    parser.add_argument("--clients", type=int, default=64,
                        help="concurrent clients of the issuance load (default 64)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds in each issuance window (default 10)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="issuance windows on the empty and on the full database, in "
                             "alternation (default 3 pairs)")
    args = parser.parse_args()
    if not 0 <= args.revocations <= args.certificates:
        parser.error("--revocations must be between 0 and --certificates")
    with setup(args.store) as bench:
        empty = measure(bench.growing, "empty store")
        print(f"filling with {args.certificates:,} certificates and {args.revocations:,} "
              "revocations ...", flush=True)
        signed, revoked = fill(bench.growing, args.certificates, args.revocations)
        print(f"filled: certificates signed and written in {signed:.0f} s, revocations "
              f"written in {revoked:.1f} s", flush=True)
        full = measure(bench.growing, "full store")
        print(f"issuance: {args.pairs} pairs of {args.duration:g} s windows ...", flush=True)
        pairs = compare_issuance(bench, args.pairs, args.clients, args.duration)
    print_figures([empty, full], pairs)
    return 1 if any(e.errors or f.errors for e, f in pairs) else 0

if __name__ == "__main__":
    sys.exit(main())
