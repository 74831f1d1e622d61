"""smallstep's step-ca 0.19 and ours, side by side in one run: the same PKI (written by
smallstep's own ``pki`` package), the same JWK provisioner, the same load.

    .venv/bin/python benchmarks/sidebyside.py [--connections 8,64] [--seconds 10] [--rounds 1]
                                              [--renewal-clients 64] [--no-renewal]

Both servers run at once on 127.0.0.1 (theirs on Badger, as its ca.json defaults; ours on
SQLite, each with the workers it picks for the machine) and are loaded in turn, never together:

* issuance: ``wrk`` (one thread, kept-alive HTTPS) posts a fresh CSR-and-token body per
  request, every token unique and made just before its run, at each concurrency;
* renewal over mutual TLS: the harness's Python clients, one kept-alive connection each,
  each renewing its own certificate (the old one stays valid, so it may renew again).

For each run: operations/s, errors, and the server's CPU per operation (utime+stime of its
processes from /proc, read at the run's edges). The crypto floor (one ES256 token verify, one
CSR verify, one certificate sign, in-process) is measured in the same run and printed on a
line of its own. Last, ours/theirs in operations/s per load, against the 1.5x target. With
``--rounds N`` the loads are repeated, alternating the servers, and medians are reported.
Exits 1 if a run had errors, 3 if smallstep's step-ca cannot be built here."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _harness import CA, crypto_floor_samples, run_load, wait_for_workers
from renewal import client_certificates
from stepca.testing import PASSWORD, TestPKI, make_csr, make_token
from stepca.testing.process import StepCAProcess, free_port
from stepca.testing.reference import (ReferenceUnavailable, built_reference, clean_env,
                                      reference_pki, write_ca_json)

REPOSITORY = Path(__file__).resolve().parents[1]
TARGET = 1.5
CSR_SUBJECTS = 256  # distinct CSRs, cycled by the tokens (a CSR costs the client 0.1 ms)
EXPECTED_MAX_RATE = 5000  # issuances/s: tokens are made for at least this rate


@dataclass
class Server:
    name: str
    ca: CA
    wrk_script: Path


@dataclass
class Figure:
    ops: int
    errors: int
    seconds: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    @property
    def cpu_per_op(self) -> float:
        return self.server_cpu / self.ops if self.ops else float("nan")


@contextmanager
def serving(name: str, pki: TestPKI, folder: Path, db: dict[str, str],
            bin_dir: Path | None) -> Iterator[Server]:
    port = free_port()
    run = folder / name
    ca_json = write_ca_json(run, pki.ca_json, port, db)
    root = pki.steppath / "certs" / "root_ca.crt"
    process = StepCAProcess(ca_json, password_file=folder / "password", root=root, port=port,
                            env=clean_env(), bin_dir=bin_dir, log_path=run / "step-ca.log")
    process.start(timeout=60)
    try:
        ca = CA(pki, [process], root, run)
        if bin_dir is None:
            wait_for_workers(ca, ca.master, None)
        yield Server(name, ca, run / "sign.lua")
    finally:
        process.stop()


def write_sign_script(server: Server, count: int) -> None:
    """wrk's Lua: ``count`` request bodies, each with its own one-time token, sent in turn."""
    audience = f"https://127.0.0.1:{server.ca.port}/1.0/sign"
    subjects = [f"svc-{i}.example.com" for i in range(CSR_SUBJECTS)]
    csrs = [make_csr(subject)[0] for subject in subjects]
    bodies = []
    for i in range(count):
        subject = subjects[i % CSR_SUBJECTS]
        token = make_token(server.ca.pki, subject, audience=audience)
        bodies.append(json.dumps({"csr": csrs[i % CSR_SUBJECTS], "ott": token}))
    with open(server.wrk_script, "w") as lua:
        lua.write("bodies = {\n" + ",\n".join(json.dumps(b) for b in bodies) + "\n}\n")
        lua.write('i = 0\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                  "request = function()\n  i = i + 1\n"
                  "  return wrk.format(nil, \"/1.0/sign\", nil, bodies[((i - 1) % #bodies) + 1])\n"
                  "end\n")


def issuance(server: Server, connections: int, seconds: int) -> Figure:
    write_sign_script(server, EXPECTED_MAX_RATE * (seconds + 1))
    cpu0 = server.ca.cpu_seconds()
    wrk = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                          "-s", str(server.wrk_script), f"https://127.0.0.1:{server.ca.port}"],
                         capture_output=True, text=True, timeout=seconds + 60)
    cpu1 = server.ca.cpu_seconds()
    out = wrk.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if wrk.returncode != 0 or total is None:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{out}\n{wrk.stderr}")
    elapsed = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    bad = int(refused.group(1)) if refused else 0
    errors = bad + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    ok = int(total.group(1)) - bad
    if ok > EXPECTED_MAX_RATE * seconds:
        raise RuntimeError("wrk reused tokens: raise EXPECTED_MAX_RATE")
    return Figure(ok, errors, elapsed, cpu1 - cpu0)


def renewal(server: Server, clients: int, seconds: int) -> Figure:
    pairs = client_certificates(server.ca, clients)
    jobs = [[("/1.0/renew", b"", {}, pair)] * (EXPECTED_MAX_RATE * (seconds + 3) // clients + 2)
            for pair in pairs]
    result = run_load(server.ca, jobs, keepalive=True, processes=2, duration=seconds,
                      warmup=1.0, expect=201)
    if result.ran_out:
        raise RuntimeError("a renewal client ran out of jobs: raise EXPECTED_MAX_RATE")
    return Figure(result.ok, result.errors, result.wall_seconds, result.server_cpu_seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="8,64",
                        help="issuance concurrencies, comma-separated (default 8,64)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--renewal-clients", type=int, default=64)
    parser.add_argument("--no-renewal", action="store_true")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.connections.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: ./scripts/install installs it (apt-get install wrk)")
    try:
        reference = built_reference(REPOSITORY / "scripts" / "reference-stepca")
    except ReferenceUnavailable as exc:
        sys.stderr.write(f"{exc}\n")
        return 3
    loads = [f"issuance, {c} connections" for c in concurrencies]
    if not args.no_renewal:
        loads.append(f"mTLS renewal, {args.renewal_clients} clients")
    figures: dict[tuple[str, str], list[Figure]] = {}
    with tempfile.TemporaryDirectory(prefix="stepca-sidebyside-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        password = folder / "password"
        password.write_bytes(PASSWORD)
        pki = reference_pki(reference, folder / "steppath", password, name="Bench")
        theirs = stack.enter_context(serving(
            "step-ca 0.19", pki, folder, {"type": "badgerv2", "dataSource": str(folder / "badger")},
            reference))
        ours = stack.enter_context(serving(
            "stepca", pki, folder, {"type": "sqlite", "dataSource": str(folder / "stepca.db")},
            None))
        floors: list[float] = []
        start_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: the loads
        for round_ in range(args.rounds):
            servers = (theirs, ours) if round_ % 2 == 0 else (ours, theirs)
            for load in loads:
                for server in servers:
                    if load.startswith("issuance"):
                        figure = issuance(server, int(load.split(", ")[1].split()[0]),
                                          args.seconds)
                    else:
                        figure = renewal(server, args.renewal_clients, args.seconds)
                    figures.setdefault((load, server.name), []).append(figure)
                    print(f"  round {round_ + 1}, {load}, {server.name}: {figure.rate:,.0f}/s, "
                          f"{figure.errors} errors, {figure.cpu_per_op * 1e6:,.0f} µs server "
                          "CPU each", flush=True)
            floors += crypto_floor_samples(pki, batches=3)
        names = [theirs.name, ours.name]
        client_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # before the servers exit
    floor = statistics.median(floors)
    print()
    print(f"{'load':<32} {'server':<13} {'ops/s':>8} {'errors':>7} {'CPU/op':>10} {'x floor':>8}")
    errors = 0
    for load in loads:
        for name in names:
            runs = figures[(load, name)]
            rate = statistics.median(f.rate for f in runs)
            cpu = statistics.median(f.cpu_per_op for f in runs)
            errors += sum(f.errors for f in runs)
            print(f"{load:<32} {name:<13} {rate:>8,.0f} {sum(f.errors for f in runs):>7} "
                  f"{cpu * 1e6:>7,.0f} µs {cpu / floor:>7.2f}x")
    print(f"crypto floor: {floor * 1e6:,.0f} µs of CPU per issuance (median of "
          f"{len(floors)} batches: one ES256 token verify, one CSR verify, one certificate sign)")
    load_cpu = (client_cpu.ru_utime + client_cpu.ru_stime
                - start_cpu.ru_utime - start_cpu.ru_stime)
    print(f"load generators' CPU over the whole run: {load_cpu:.1f} s (wrk and the renewal "
          "clients, this script's children)")
    for load in loads:
        ratio = (statistics.median(f.rate for f in figures[(load, names[1])])
                 / statistics.median(f.rate for f in figures[(load, names[0])]))
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(f"ours/theirs, {load}: {ratio:.2f}x (target {TARGET}x: {verdict})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
