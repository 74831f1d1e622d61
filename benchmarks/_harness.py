"""Shared parts of the benchmarks: a real step-ca on 127.0.0.1, load from client processes,
and the CPU and memory of the CA's processes read from /proc."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import resource
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepca.testing import TestPKI, make_csr, make_pki, make_token
from stepca.testing.process import StepCAProcess, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class CA:
    pki: TestPKI
    process: StepCAProcess
    root: Path
    tmp: Path

    @property
    def port(self) -> int:
        return self.process.port

    def cpu_seconds(self) -> float:
        """utime + stime of the gunicorn master and every child (workers), now."""
        total = 0
        for pid in self._all_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
        return total / CLK_TCK

    def rss_bytes(self) -> int:
        return sum(_status_kb(pid, "VmRSS") for pid in self._all_pids()) * 1024

    def hwm_bytes(self) -> int:
        return sum(_status_kb(pid, "VmHWM") for pid in self._all_pids()) * 1024

    def _all_pids(self) -> list[int]:
        return self.process.pids()


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def running_ca(*, workers: int | None) -> Iterator[CA]:
    with tempfile.TemporaryDirectory(prefix="stepca-bench-") as folder:
        tmp = Path(folder)
        pki = make_pki(tmp / "pki")
        port = free_port()
        server = {"workers": workers} if workers else {}
        config = pki.config(tmp / "run", address=f"127.0.0.1:{port}", server=server)
        password = tmp / "password"
        password.write_bytes(pki.password)
        root = pki.steppath / "certs" / "root_ca.crt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        process = StepCAProcess(config, password_file=password, root=root, port=port, env=env,
                                log_path=tmp / "step-ca.log")
        # The access log would cost the CA a write per request: keep it, it is part of the
        # real server, but send it where it cannot fill a terminal.
        process.start(timeout=60)
        try:
            yield CA(pki, process, root, tmp)
        finally:
            process.stop()


def sign_bodies(ca: CA, count: int) -> list[bytes]:
    """Request bodies for POST /1.0/sign, made before the measured window."""
    audience = f"https://127.0.0.1:{ca.port}/1.0/sign"
    bodies = []
    for i in range(count):
        subject = f"svc-{i}.example.com"
        csr, _ = make_csr(subject)
        bodies.append(json.dumps({"csr": csr, "ott": make_token(ca.pki, subject,
                                                                audience=audience)}).encode())
    return bodies


@dataclass
class LoadResult:
    ok: int
    errors: int
    error_samples: list[str]
    wall_seconds: float
    server_cpu_seconds: float
    client_cpu_seconds: float
    peak_rss_bytes: int
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.wall_seconds if self.wall_seconds else 0.0

    def latency(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Job = tuple[str, bytes, dict[str, str], tuple[str, str] | None]  # path, body, headers, client cert


def _client_process(port: int, root: str, jobs_per_thread: list[list[Job]], keepalive: bool,
                    start_at: float, out: Any) -> None:
    results: list[tuple[int, int, list[str], list[float]]] = []
    lock = threading.Lock()

    def worker(jobs: list[Job]) -> None:
        ok = errors = 0
        samples: list[str] = []
        latencies: list[float] = []
        contexts: dict[Any, ssl.SSLContext] = {}
        conn: http.client.HTTPSConnection | None = None
        current_cert: Any = "unset"
        while time.time() < start_at:
            time.sleep(0.001)
        for path, body, headers, cert in jobs:
            if cert not in contexts:
                context = ssl.create_default_context(cafile=root)
                context.check_hostname = False
                if cert:
                    context.load_cert_chain(*cert)
                contexts[cert] = context
            if conn is None or not keepalive or cert != current_cert:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=contexts[cert],
                                                   timeout=60)
                current_cert = cert
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={
                    "Content-Type": "application/json",
                    **({} if keepalive else {"Connection": "close"}), **headers})
                response = conn.getresponse()
                data = response.read()
                if response.status == 201:
                    ok += 1
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
                    if len(samples) < 3:
                        samples.append(f"{response.status} {data[:200]!r}")
                if response.will_close or not keepalive:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                errors += 1
                if len(samples) < 3:
                    samples.append(repr(exc))
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            results.append((ok, errors, samples, latencies))

    threads = [threading.Thread(target=worker, args=(jobs,)) for jobs in jobs_per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    samples = [s for r in results for s in r[2]][:5]
    latencies = [v for r in results for v in r[3]]
    out.send((ok, errors, samples, latencies))
    out.close()


def run_load(ca: CA, jobs_per_client: list[list[Job]], *, keepalive: bool,
             processes: int) -> LoadResult:
    """Spread the clients over ``processes`` client processes (threads within each) and run
    them all at once; every client has its own connection."""
    groups = [jobs_per_client[i::processes] for i in range(processes)]
    start_at = time.time() + 1.0
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for group in groups:
        if not group:
            continue
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client_process, args=(ca.port, str(ca.root), group,
                                                         keepalive, start_at, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    peak = [ca.rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], ca.rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_before, wall_before = ca.cpu_seconds(), time.perf_counter()
    outcomes = [pipe.recv() for pipe in pipes]
    wall = time.perf_counter() - wall_before
    cpu = ca.cpu_seconds() - cpu_before
    for proc in procs:
        proc.join()
    stop.set()
    sampler.join()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = ((children_after.ru_utime + children_after.ru_stime)
                  - (children_before.ru_utime + children_before.ru_stime))
    return LoadResult(ok=sum(o[0] for o in outcomes), errors=sum(o[1] for o in outcomes),
                      error_samples=[s for o in outcomes for s in o[2]][:5], wall_seconds=wall,
                      server_cpu_seconds=cpu, client_cpu_seconds=client_cpu,
                      peak_rss_bytes=peak[0], latencies_ms=[v for o in outcomes for v in o[3]])


def crypto_floor(pki: TestPKI, rounds: int = 1500) -> float:
    """CPU seconds for one ES256 token verify + one CSR verify + one certificate sign,
    in-process: the work an issuance cannot avoid."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from stepca.jose import VerifyingKey, parse_unverified
    from stepca.timeutil import utcnow
    from stepca.x509util import load_private_key

    verifier = VerifyingKey(pki.provisioner_key.public_key(), "ES256")
    token = parse_unverified(make_token(pki, "floor.example.com"))
    csr_pem, _ = make_csr("floor.example.com")
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    signer = load_private_key((pki.steppath / "secrets" / "intermediate_ca_key").read_bytes(),
                              pki.password)
    issuer = x509.load_pem_x509_certificate(
        (pki.steppath / "certs" / "intermediate_ca.crt").read_bytes())
    now = utcnow()

    def once() -> None:
        verifier.verify(token)
        assert x509.load_pem_x509_csr(csr_pem.encode()).is_signature_valid
        (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer.subject)
         .public_key(csr.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now)
         .sign(signer, hashes.SHA256()))

    for _ in range(100):  # warm caches and allocators before measuring
        once()
    samples = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds // 5):
            once()
        samples.append((time.process_time() - started) / (rounds // 5))
    return min(samples)  # a floor: the least this work has been seen to cost


def report(label: str, result: LoadResult, floor: float, clients: int) -> list[str]:
    per_op = result.server_cpu_seconds / result.ok if result.ok else float("nan")
    return [
        f"{label}: {result.ok} ok, {result.errors} errors, {clients} concurrent clients, "
        f"{result.wall_seconds:.2f} s",
        f"  {label}s/s:                 {result.rate:,.0f}",
        f"  server CPU per {label}:     {per_op * 1e6:,.0f} µs "
        f"({result.server_cpu_seconds:.2f} CPU-s in total)",
        f"  ratio to the crypto floor:   {per_op / floor:.2f}x",
        f"  latency p50 / p99:           {result.latency(0.5):.1f} / "
        f"{result.latency(0.99):.1f} ms",
        f"  client CPU (load generator): {result.client_cpu_seconds:.2f} CPU-s",
        f"  peak memory of CA processes: {result.peak_rss_bytes / 2**20:.1f} MiB "
        "(sum of RSS over master and workers, sampled every 50 ms)",
    ]


Factory = Callable[[CA, int], list[list[Job]]]
