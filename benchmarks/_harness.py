"""Shared parts of the benchmarks: a real step-ca on 127.0.0.1 (or several instances on one
PKI and one database), load from client processes, the CPU and memory of the CA's processes
read from /proc, and the in-process crypto floor.

Accounting, all taken at the same two instants (the edges of the measured window):

* CA CPU: utime+stime from /proc/<pid>/stat of each instance's gunicorn master and every
  descendant, plus the masters' cutime+cstime so a worker that exits (and is reaped) inside
  the window still counts;
* database CPU (PostgreSQL store only): the same sum over the postmaster and its server
  processes, reported apart from the CA's;
* load-generator CPU: each client process's own ``os.times()``, and the harness's;
* machine CPU: the busy jiffies of /proc/stat, so "other" (whatever else ran on the box) shows.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import socket
import ssl
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from stepca.retention import PROCESS_NAME as RETENTION
from stepca.testing import TestPKI, make_csr, make_pki, make_token
from stepca.testing.process import StepCAProcess, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
HOST = "127.0.0.1"
PROBE_INTERVAL = 0.25  # seconds between batches of the floor inside the window
TOKEN_LIFETIME = 300.0  # make_token's default: every token must be spent within 5 minutes

Job = tuple[str, bytes, dict[str, str], tuple[str, str] | None]
"""One request: path, JSON body, extra headers, client certificate (crt, key) or None."""

JobMaker = Callable[[int, int], list[Job]]
"""(client index, how many) -> that client's jobs; runs in the client process, before the
window, so making tokens and CSRs is neither measured nor serialised in the parent."""


# -- the CA and its processes ----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _status_kb(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, through each thread's children list."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            except OSError:
                continue
            queue.extend(int(c) for c in children if int(c) not in found)
    return found


def _cpu_ticks(pids: Sequence[int], parents: Sequence[int]) -> int:
    """utime+stime of ``pids``, plus cutime+cstime of ``parents`` (their reaped children)."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except (OSError, IndexError):
            continue  # exited between the listing and the read
        ticks += int(fields[11]) + int(fields[12])
        if pid in parents:
            ticks += int(fields[13]) + int(fields[14])
    return ticks


@dataclass
class CA:
    pki: TestPKI
    processes: list[StepCAProcess]
    """One per instance: the same PKI, provisioners and database, each on its own port."""
    root: Path
    tmp: Path
    database_pid: int | None = None
    """PostgreSQL's postmaster, when the CA's store is a private PostgreSQL server."""

    @property
    def process(self) -> StepCAProcess:
        return self.processes[0]

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def ports(self) -> list[int]:
        return [process.port for process in self.processes]

    @property
    def masters(self) -> list[int]:
        return [process.proc.pid for process in self.processes if process.proc is not None]

    @property
    def master(self) -> int:
        return self.masters[0]

    def pids(self) -> list[int]:
        return [pid for master in self.masters for pid in descendants(master)]

    def workers(self, master: int | None = None) -> list[int]:
        """The HTTP worker processes of one instance's ``master``, or of every instance: its
        children but the retention process, which names itself before the workers start."""
        pids = descendants(master) if master is not None else self.pids()
        return [pid for pid in pids if pid not in self.masters and _comm(pid) != RETENTION]

    def cpu_seconds(self) -> float:
        """CPU the CA has used so far: every live process, plus reaped children's."""
        return _cpu_ticks(self.pids(), self.masters) / CLK_TCK

    def database_cpu_seconds(self) -> float | None:
        """CPU PostgreSQL has used so far (postmaster and server processes); None: no server."""
        if self.database_pid is None:
            return None
        return _cpu_ticks(descendants(self.database_pid), [self.database_pid]) / CLK_TCK

    def rss_bytes(self, pids: Sequence[int] | None = None) -> int:
        total = 0
        for pid in pids if pids is not None else self.pids():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
        return total

    def hwm_bytes(self) -> int:
        """Sum of each process's own peak RSS (VmHWM): an upper bound of the joint peak."""
        return sum(_status_kb(pid, "VmHWM") for pid in self.pids()) * 1024


STORES = ("sqlite", "postgresql")


@contextmanager
def running_ca(*, workers: int | None, store: str = "sqlite", instances: int = 1) -> Iterator[CA]:
    """A fresh PKI and a real ``step-ca`` (gunicorn, TLS, SQLite) on 127.0.0.1; or, with
    ``store="postgresql"``, on a private PostgreSQL server started for the run and stopped
    after it; ``instances`` step-ca processes on that one PKI and database, each on its own
    port (their ca.json differ in ``address`` only)."""
    if store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}")
    with tempfile.TemporaryDirectory(prefix="stepca-bench-") as folder, ExitStack() as stack:
        tmp = Path(folder)
        pki = make_pki(tmp / "pki")
        db: dict[str, Any] | None = None
        database_pid = None
        if store == "postgresql":
            from stepca.testing.postgres import postgres_cluster

            pg = stack.enter_context(postgres_cluster())
            db, database_pid = {"type": "postgresql", "dataSource": pg.dsn,
                                "database": pg.database}, pg.pid
        elif instances > 1:  # one SQLite file, shared by the instances on this machine
            db = {"type": "sqlite", "dataSource": str(tmp / "db" / "stepca.db")}
        server = {"workers": workers} if workers else {}
        password = tmp / "password"
        password.write_bytes(pki.password)
        root = pki.steppath / "certs" / "root_ca.crt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        processes = []
        for index in range(instances):
            port = free_port()
            run = tmp / ("run" if instances == 1 else f"run-{index + 1}")
            config = pki.config(run, address=f"{HOST}:{port}", server=server, db=db)
            # The access log stays on (it is part of the real server) but goes to a file.
            process = StepCAProcess(config, password_file=password, root=root, port=port,
                                    env=env, log_path=run / "step-ca.log")
            process.start(timeout=60)
            stack.callback(process.stop)  # stopped before the database, in reverse order
            processes.append(process)
        ca = CA(pki, processes, root, tmp, database_pid)
        for master in ca.masters:
            wait_for_workers(ca, master, workers)
        yield ca


def wait_for_workers(ca: CA, master: int, expected: int | None, timeout: float = 30) -> None:
    # /health answers as soon as one worker is up; measure only once all of them are.
    deadline = time.monotonic() + timeout
    from stepca.config import ServerOptions

    want = expected or ServerOptions().workers
    while len(ca.workers(master)) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let the last workers build their TLS context


def audience(ca: CA, path: str = "/1.0/sign") -> str:
    return f"https://{HOST}:{ca.port}{path}"


def sign_body(pki: TestPKI, aud: str, subject: str) -> bytes:
    csr, _ = make_csr(subject)
    return json.dumps({"csr": csr, "ott": make_token(pki, subject, audience=aud)}).encode()


def sign_bodies(ca: CA, count: int) -> list[bytes]:
    """Request bodies for POST /1.0/sign, made in this process (see ``sign_job_maker``)."""
    aud = audience(ca)
    return [sign_body(ca.pki, aud, f"svc-{i}.example.com") for i in range(count)]


def sign_job_maker(ca: CA) -> JobMaker:
    """Sign jobs made inside each client process (forked, so the provisioner key is there)."""
    pki, aud = ca.pki, audience(ca)

    def make(client: int, count: int) -> list[Job]:
        return [("/1.0/sign", sign_body(pki, aud, f"svc-{client}-{i}.example.com"), {}, None)
                for i in range(count)]

    return make


def baseline_job_maker(client: int, count: int) -> list[Job]:
    """GET /version: the cost of HTTP, TLS, gunicorn and Falcon with no work behind them
    (until 2026-12-06 the baseline was GET /health, which now reads the store)."""
    return [("/version", b"", {}, None)] * count


# -- a lean HTTP/1.1 client --------------------------------------------------------------------
# http.client parses headers through the email package (~3x the CPU per request): on a box
# where the generator shares two cores with the CA, every client microsecond is taken from it.


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str],
                  keepalive: bool, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if method != "GET":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if not keepalive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HTTPSConnection:
    """One TLS connection; ``exchange`` sends a request and reads the whole response."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection((HOST, port), timeout=60)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=HOST)
        except BaseException:
            raw.close()
            raise
        self.buffer = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the CA")
        self.buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """(status, body, whether the CA will close the connection)."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        version, status = lines[0].split(b" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        closes = headers.get(b"connection") == b"close" or version == b"HTTP/1.0"
        if b"content-length" in headers:
            body = self._take(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._take(size))
                self._take(2)
            while self._line():  # trailers end with an empty line
                pass
            body = b"".join(parts)
        else:
            while True:  # the body runs to the end of the connection
                try:
                    self._fill()
                except ConnectionError:
                    break
            body, self.buffer, closes = self.buffer, b"", True
        return int(status), body, closes


# -- the load run ------------------------------------------------------------------------------


@dataclass
class Plan:
    keepalive: bool
    start: float  # time.monotonic() (system-wide on Linux) when every client starts
    window_start: float
    window_end: float | None  # None: run every job, the window closes with the last response
    method: str = "POST"
    expect: int = 201  # the status of a success


@dataclass
class ClientReport:
    ok: int = 0  # successful responses inside the window
    ok_total: int = 0
    errors: int = 0  # failed requests or connections, anywhere in the run
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # of the responses counted in ok
    last_response: float = 0.0
    ran_out: bool = False  # a client spent all its jobs before the window closed
    cpu_window: float = 0.0  # this process's CPU-seconds inside the window


def _client_thread(port: int, context: ssl.SSLContext, requests: list[bytes],
                   plan: Plan, report: ClientReport, lock: threading.Lock) -> None:
    ok = ok_total = errors = 0
    samples: list[str] = []
    latencies: list[float] = []
    last = 0.0
    closed_by_window = False
    conn: HTTPSConnection | None = None

    def failed(what: object) -> None:
        nonlocal errors
        errors += 1
        if len(samples) < 3:
            samples.append(str(what)[:300])

    if plan.keepalive:
        try:  # the TLS handshake of a kept-alive connection belongs before the window
            conn = HTTPSConnection(port, context)
        except (OSError, ValueError) as exc:
            failed(f"connect: {exc!r}")
    time.sleep(max(0.0, plan.start - time.monotonic()))
    for request in requests:
        started = time.monotonic()
        if plan.window_end is not None and started >= plan.window_end:
            closed_by_window = True
            break
        try:
            if conn is None:
                conn = HTTPSConnection(port, context)
            status, body, closes = conn.exchange(request)
        except (OSError, ValueError) as exc:
            failed(f"{exc!r}")
            if conn is not None:
                conn.close()
            conn = None
            continue
        finished = time.monotonic()
        last = finished
        if status != plan.expect:
            failed(f"HTTP {status}: {body[:200]!r}")
        else:
            ok_total += 1
            if finished >= plan.window_start and (plan.window_end is None
                                                  or finished <= plan.window_end):
                ok += 1
                latencies.append((finished - started) * 1000)
        if closes or not plan.keepalive:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    ran_out = (plan.window_end is not None and not closed_by_window
               and time.monotonic() < plan.window_end)
    with lock:
        report.ok += ok
        report.ok_total += ok_total
        report.errors += errors
        report.error_samples.extend(samples)
        report.latencies_ms.extend(latencies)
        report.last_response = max(report.last_response, last)
        report.ran_out = report.ran_out or ran_out


def _cpu_self() -> float:
    times = os.times()
    return times.user + times.system


def _client_process(ports: list[int], root: str, clients: list[int],
                    jobs: list[list[Job]] | None, make_jobs: JobMaker | None, per_client: int,
                    pipe: Connection) -> None:
    if jobs is None:
        assert make_jobs is not None
        jobs = [make_jobs(client, per_client) for client in clients]
    contexts: dict[Any, ssl.SSLContext] = {}
    work: list[tuple[int, ssl.SSLContext, list[bytes]]] = []
    for client, client_jobs in zip(clients, jobs, strict=True):
        cert = client_jobs[0][3] if client_jobs else None
        if cert not in contexts:
            context = ssl.create_default_context(cafile=root)  # the PKI's root, hostname checked
            if cert:
                context.load_cert_chain(*cert)
            contexts[cert] = context
        work.append((ports[client % len(ports)], contexts[cert], []))  # instances in turn
    pipe.send(sum(len(j) for j in jobs))
    plan: Plan = pipe.recv()
    for (port, _, requests), client_jobs in zip(work, jobs, strict=True):
        requests.extend(request_bytes(port, path, body, headers, plan.keepalive, plan.method)
                        for path, body, headers, _ in client_jobs)
    report, lock = ClientReport(), threading.Lock()
    cpu_marks: list[float] = []

    def mark_window() -> None:  # this process's CPU at the window's edges
        time.sleep(max(0.0, plan.window_start - time.monotonic()))
        cpu_marks.append(_cpu_self())
        if plan.window_end is not None:
            time.sleep(max(0.0, plan.window_end - time.monotonic()))
            cpu_marks.append(_cpu_self())

    marker = threading.Thread(target=mark_window, daemon=True)
    marker.start()
    threads = [threading.Thread(target=_client_thread,
                                args=(port, context, requests, plan, report, lock))
               for port, context, requests in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    marker.join()
    if len(cpu_marks) < 2:
        cpu_marks.append(_cpu_self())
    report.cpu_window = cpu_marks[1] - cpu_marks[0]
    report.error_samples = report.error_samples[:5]
    pipe.send(report)
    pipe.close()


def _machine_busy() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK  # guest time is already inside user


@dataclass
class LoadResult:
    ok: int
    errors: int
    error_samples: list[str]
    wall_seconds: float
    server_cpu_seconds: float
    client_cpu_seconds: float  # client processes plus the harness itself
    machine_cpu_seconds: float
    peak_rss_bytes: int
    hwm_bytes: int
    latencies_ms: list[float]
    clients: int = 0
    client_processes: int = 0
    workers: int = 0
    ran_out: bool = False
    ok_total: int = 0
    probed: list[float] = field(default_factory=list)
    database_cpu_seconds: float | None = None  # PostgreSQL's, when the store is a server
    instances: int = 1

    @property
    def rate(self) -> float:
        return self.ok / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def probed_floor(self) -> float:
        """The probe's mean: its batches are equal and evenly spaced over the window, so this
        matches the CA's CPU, a total over the same window divided by a count."""
        return statistics.fmean(self.probed) if self.probed else float("nan")

    @property
    def other_cpu_seconds(self) -> float:
        return max(0.0, self.machine_cpu_seconds - self.server_cpu_seconds
                   - self.client_cpu_seconds - (self.database_cpu_seconds or 0.0))

    def latency(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_load(ca: CA, jobs_per_client: list[list[Job]] | None = None, *, keepalive: bool,
             processes: int, make_jobs: JobMaker | None = None, clients: int | None = None,
             per_client: int = 0, duration: float | None = None, warmup: float = 1.0,
             method: str = "POST", expect: int = 201,
             probe: Callable[[], float] | None = None) -> LoadResult:
    """Run every client at once, each on its own connection, spread over ``processes`` client
    processes (one thread per client) and over the CA's instances (client i on instance
    i mod n). Jobs are given, or made in the client processes by
    ``make_jobs`` (``clients`` x ``per_client``).

    Without ``duration`` every job runs and the window is [start, last response]. With it, the
    window is [start + warmup, start + warmup + duration], when every connection is already
    busy: only responses inside it count, and clients stop sending once it closes.

    ``probe`` (seconds of CPU per operation) runs every ``PROBE_INTERVAL`` inside the window,
    so it is measured over the same seconds, and under the same load, as the CA."""
    if jobs_per_client is not None:
        clients = len(jobs_per_client)
    assert clients, "give jobs_per_client, or make_jobs with clients"
    processes = max(1, min(processes, clients))
    ctx = multiprocessing.get_context("fork")
    pipes: list[Connection] = []
    procs = []
    for index in range(processes):
        mine = list(range(index, clients, processes))
        jobs = [jobs_per_client[c] for c in mine] if jobs_per_client is not None else None
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_client_process, name=f"bench-client-{index}",
                           args=(ca.ports, str(ca.root), mine, jobs, make_jobs, per_client, child))
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    try:
        for pipe in pipes:  # every client process has its jobs ready
            pipe.recv()
        start = time.monotonic() + 1.0  # time to open the kept-alive connections
        plan = Plan(keepalive, start, start + (warmup if duration else 0.0),
                    start + warmup + duration if duration else None, method, expect)
        for pipe in pipes:
            pipe.send(plan)

        ca_pids = ca.pids()
        peak = [ca.rss_bytes(ca_pids)]
        stop = threading.Event()

        def sample_memory() -> None:
            pids, tick = ca_pids, 0
            while not stop.wait(0.05):
                tick += 1
                if tick % 20 == 0:  # a worker may have been replaced
                    pids = ca.pids()
                peak[0] = max(peak[0], ca.rss_bytes(pids))

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        probed: list[float] = []

        def run_probe() -> None:
            time.sleep(max(0.0, plan.window_start - time.monotonic()))
            while not stop.wait(PROBE_INTERVAL) and (plan.window_end is None
                                          or time.monotonic() < plan.window_end):
                probed.append(probe())  # type: ignore[misc]

        prober = threading.Thread(target=run_probe, daemon=True)
        if probe is not None:
            prober.start()
        time.sleep(max(0.0, plan.window_start - time.monotonic()))
        ca0, self0, machine0 = ca.cpu_seconds(), _cpu_self(), _machine_busy()
        db0 = ca.database_cpu_seconds()
        if plan.window_end is not None:
            time.sleep(max(0.0, plan.window_end - time.monotonic()))
            ca1, self1, machine1 = ca.cpu_seconds(), _cpu_self(), _machine_busy()
            db1 = ca.database_cpu_seconds()
            reports: list[ClientReport] = [pipe.recv() for pipe in pipes]
            wall = plan.window_end - plan.window_start
        else:
            reports = [pipe.recv() for pipe in pipes]
            ca1, self1, machine1 = ca.cpu_seconds(), _cpu_self(), _machine_busy()
            db1 = ca.database_cpu_seconds()
            wall = max(0.0, max(r.last_response for r in reports) - plan.window_start)
        stop.set()
        sampler.join()
        if probe is not None:
            prober.join()
        workers = len(ca.workers())
        hwm = ca.hwm_bytes()
    finally:
        for proc in procs:
            proc.join(timeout=120)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return LoadResult(
        ok=sum(r.ok for r in reports), errors=sum(r.errors for r in reports),
        error_samples=[s for r in reports for s in r.error_samples][:5], wall_seconds=wall,
        server_cpu_seconds=ca1 - ca0,
        client_cpu_seconds=sum(r.cpu_window for r in reports) + (self1 - self0),
        machine_cpu_seconds=machine1 - machine0, peak_rss_bytes=peak[0], hwm_bytes=hwm,
        latencies_ms=[v for r in reports for v in r.latencies_ms], clients=clients,
        client_processes=processes, workers=workers, ran_out=any(r.ran_out for r in reports),
        ok_total=sum(r.ok_total for r in reports), probed=probed,
        database_cpu_seconds=None if db0 is None or db1 is None else db1 - db0,
        instances=len(ca.processes))


def jobs_needed(clients: int, duration: float, warmup: float, max_rate: float) -> int:
    """Jobs per client so that none runs dry at ``max_rate`` total, even when the CA serves
    some connections faster than others."""
    return math.ceil(max_rate * (duration + warmup + 1.0) / clients) + 2


# -- the crypto floor --------------------------------------------------------------------------


def crypto_floor_samples(pki: TestPKI, batches: int = 7, per_batch: int = 200,
                         warmup: int = 50) -> list[float]:
    """CPU seconds (this thread) for one ES256 token verify + one CSR signature verify + one
    certificate sign, in-process: the work no issuance can avoid. One figure per batch."""
    return time_batches(floor_operation(pki), batches, per_batch, warmup)


def floor_operation(pki: TestPKI) -> Callable[[], None]:
    """One issuance's unavoidable crypto, with its inputs made once (not measured)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from stepca.jose import VerifyingKey, parse_unverified
    from stepca.timeutil import utcnow
    from stepca.x509util import load_private_key

    verifier = VerifyingKey(pki.provisioner_key.public_key(), "ES256")
    token = parse_unverified(make_token(pki, "floor.example.com"))
    csr_pem, _ = make_csr("floor.example.com")
    csr_bytes = csr_pem.encode()
    signer = load_private_key((pki.steppath / "secrets" / "intermediate_ca_key").read_bytes(),
                              pki.password)
    issuer = x509.load_pem_x509_certificate(
        (pki.steppath / "certs" / "intermediate_ca.crt").read_bytes()).subject
    now = utcnow()

    def once() -> None:
        verifier.verify(token)
        csr = x509.load_pem_x509_csr(csr_bytes)
        if not csr.is_signature_valid:
            raise AssertionError("the floor's CSR does not verify")
        (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer)
         .public_key(csr.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now)
         .sign(signer, hashes.SHA256()))

    return once


def time_batches(operation: Callable[[], None], batches: int, per_batch: int,
                 warmup: int) -> list[float]:
    """CPU seconds of this thread per call of ``operation``, one figure per batch."""
    for _ in range(warmup):  # warm caches and allocators first
        operation()
    samples = []
    for _ in range(batches):
        started = time.thread_time()
        for _ in range(per_batch):
            operation()
        samples.append((time.thread_time() - started) / per_batch)
    return samples


def floor_probe(pki: TestPKI) -> Callable[[], float]:
    """``run_load``'s probe: a short batch of the floor, its inputs made beforehand."""
    once = floor_operation(pki)
    return lambda: time_batches(once, batches=1, per_batch=20, warmup=5)[0]


# -- printing ----------------------------------------------------------------------------------


def report(label: str, result: LoadResult, floor: float, clients: int) -> list[str]:
    """The figures of one load run as plain lines."""
    per_op = result.server_cpu_seconds / result.ok if result.ok else float("nan")
    wall = result.wall_seconds or float("nan")
    client_per_op = result.client_cpu_seconds / result.ok if result.ok else float("nan")
    lines: list[str] = []
    add = lines.append
    add(f"{label}: {result.ok} ok in a {result.wall_seconds:.2f} s window, {result.errors} "
        f"errors ({result.ok_total} ok in all), {clients} concurrent clients on "
        f"{result.client_processes} client processes, {result.workers} CA worker processes"
        + (f" over {result.instances} instances" if result.instances > 1 else ""))
    add(f"  {label}s/s:                  {result.rate:,.0f}")
    add(f"  CA CPU per {label}:          {per_op * 1e6:,.0f} µs ({result.server_cpu_seconds:.2f} "
        f"CPU-s, {result.server_cpu_seconds / wall:.2f} cores)")
    add(f"  ratio to the crypto floor:    {per_op / floor:.2f}x")
    if result.database_cpu_seconds is not None:
        db_per_op = result.database_cpu_seconds / result.ok if result.ok else float("nan")
        add(f"  PostgreSQL CPU per {label}:  {db_per_op * 1e6:,.0f} µs "
            f"({result.database_cpu_seconds:.2f} CPU-s, "
            f"{result.database_cpu_seconds / wall:.2f} cores; postmaster and server processes)")
        add(f"  CA + PostgreSQL per {label}: {(per_op + db_per_op) * 1e6:,.0f} µs "
            f"({(per_op + db_per_op) / floor:.2f}x the floor)")
    add(f"  latency p50 / p99:            {result.latency(0.5):.1f} / "
        f"{result.latency(0.99):.1f} ms")
    add(f"  load generator CPU:           {result.client_cpu_seconds:.2f} CPU-s "
        f"({result.client_cpu_seconds / wall:.2f} cores; {client_per_op * 1e6:,.0f} µs per "
        f"{label})")
    add(f"  other CPU on the machine:     {result.other_cpu_seconds:.2f} CPU-s "
        f"({result.other_cpu_seconds / wall:.2f} cores of {result.machine_cpu_seconds / wall:.2f} "
        "busy; high means a noisy run)")
    add(f"  peak memory of CA processes:  {result.peak_rss_bytes / 2**20:.1f} MiB (largest sum "
        "of RSS over master and workers, sampled every 50 ms); "
        f"{result.hwm_bytes / 2**20:.1f} MiB (sum of each process's own VmHWM)")
    return lines
