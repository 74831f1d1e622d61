"""Certificates issued per second through POST /1.0/sign over HTTPS against a real step-ca.

    .venv/bin/python benchmarks/issuance.py [--clients 64] [--duration 10 | --requests N]
                                             [--workers N] [--keepalive | --no-keepalive]
                                             [--store sqlite|postgresql] [--instances N]

Starts step-ca (gunicorn, TLS, SQLite) on 127.0.0.1 with a fresh PKI, makes every token and CSR
before the measured window (inside the client processes), then prints issuances/s, the CA's
CPU-seconds per issuance, the peak memory of its processes, the load generator's CPU and,
measured in the same run, the pure-crypto floor (one ES256 token verify + one CSR signature
verify + one certificate sign, in-process), so the ratio does not depend on the machine.
``--store postgresql`` starts a private PostgreSQL server (stepca.testing.postgres) for the
run instead, and prints its CPU per issuance apart from the CA's; ``--instances 2`` runs two
step-ca processes on the one PKI and database, on two ports, the clients dealt to them in turn
(the CA's CPU is then summed over both).
The target's floor is sampled throughout the measured window, over the same seconds as the
CA's CPU, and averaged the same way (docs/decisions/0010); the floor of the idle machine,
before and after the load, is printed beside it.
Target: at most 3x the floor and no error with 64 concurrent clients.

Exit status: 0 if every request succeeded, 1 if any failed, 2 if the figures are not valid
(a client ran out of tokens before the window closed: raise --max-rate; or too few batches of
the floor fell inside the window)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (
    CA,
    PROBE_INTERVAL,
    STORES,
    TOKEN_LIFETIME,
    Job,
    LoadResult,
    crypto_floor_samples,
    floor_probe,
    baseline_job_maker,
    jobs_needed,
    report,
    run_load,
    running_ca,
    sign_bodies,
    sign_job_maker,
)

TARGET_RATIO = 3.0
TARGET_CLIENTS = 64
NOISY_CORES = 0.25  # other processes using more than this during the window skew the figures
BASELINE_SECONDS = 3.0
MIN_PROBES = 8  # batches of the floor inside the window below which the ratio means little


def sign_jobs(ca: CA, clients: int, requests: int) -> list[list[Job]]:
    """``requests`` sign jobs dealt to ``clients``, made in this process (renewal.py uses it)."""
    bodies = sign_bodies(ca, requests)
    return [[("/1.0/sign", body, {}, None) for body in bodies[i::clients]]
            for i in range(clients)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=TARGET_CLIENTS,
                        help="concurrent clients, each on its own connection (default 64)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds in the measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of load before the window opens (default 1)")
    parser.add_argument("--requests", type=int, default=None,
                        help="send exactly this many requests instead; the window is then "
                             "first request to last response")
    parser.add_argument("--max-rate", type=float, default=2000.0,
                        help="issuances/s the pre-made tokens must last for (default 2000)")
    parser.add_argument("--workers", type=int, default=None,
                        help="CA worker processes per instance (default: the CA's own default)")
    parser.add_argument("--store", choices=STORES, default="sqlite",
                        help="the CA's database: an SQLite file (default) or a private "
                             "PostgreSQL server started for the run")
    parser.add_argument("--instances", type=int, default=1,
                        help="step-ca processes on the one PKI and database, each on its own "
                             "port, the clients spread over them (default 1)")
    parser.add_argument("--processes", type=int, default=min(4, 2 * (os.cpu_count() or 1)),
                        help="client processes the clients are spread over (default 4)")
    parser.add_argument("--keepalive", action=argparse.BooleanOptionalAction, default=True,
                        help="reuse each client's connection (default); --no-keepalive opens a "
                             "new TLS connection, with a full handshake, per request")
    parser.add_argument("--http-baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="after the issuances, load GET /version the same way for "
                             f"{BASELINE_SECONDS:g} s: the CPU of HTTP, TLS, gunicorn and Falcon "
                             "alone (default on)")
    args = parser.parse_args()
    if args.instances < 1 or args.instances > args.clients:
        parser.error("--instances must be between 1 and --clients")
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--clients and --duration must be positive, --warmup not negative")
    if args.requests is None and args.duration + args.warmup > TOKEN_LIFETIME - 60:
        parser.error(f"tokens live {TOKEN_LIFETIME:.0f} s: keep --duration + --warmup under "
                     f"{TOKEN_LIFETIME - 60:.0f} s")

    with running_ca(workers=args.workers, store=args.store, instances=args.instances) as ca:
        for port, master in zip(ca.ports, ca.masters, strict=True):
            print(f"step-ca on 127.0.0.1:{port}: master {master}, workers "
                  f"{ca.workers(master)}", flush=True)
        if ca.database_pid is not None:
            print(f"PostgreSQL: postmaster {ca.database_pid}", flush=True)
        floor_before = crypto_floor_samples(ca.pki)  # the CA is idle: nothing competes
        probe = floor_probe(ca.pki)
        started = time.perf_counter()
        if args.requests is not None:
            print(f"making {args.requests} tokens and CSRs (not measured) ...", flush=True)
            result = run_load(ca, sign_jobs(ca, args.clients, args.requests),
                              keepalive=args.keepalive, processes=args.processes, probe=probe)
        else:
            per_client = jobs_needed(args.clients, args.duration, args.warmup, args.max_rate)
            print(f"making {per_client * args.clients} tokens and CSRs in {args.processes} "
                  f"client processes (not measured), then {args.warmup:g} s of warm-up and a "
                  f"{args.duration:g} s window ...", flush=True)
            result = run_load(ca, make_jobs=sign_job_maker(ca), clients=args.clients,
                              per_client=per_client, keepalive=args.keepalive,
                              processes=args.processes, duration=args.duration,
                              warmup=args.warmup, probe=probe)
        print(f"load done in {time.perf_counter() - started:.1f} s", flush=True)
        baseline: LoadResult | None = None
        if args.http_baseline:
            per_client = jobs_needed(args.clients, BASELINE_SECONDS, 0.5, 20_000)
            baseline = run_load(ca, make_jobs=baseline_job_maker, clients=args.clients,
                                per_client=per_client, keepalive=args.keepalive,
                                processes=args.processes, duration=BASELINE_SECONDS,
                                warmup=0.5, method="GET", expect=200)
        floor_after = crypto_floor_samples(ca.pki)
    per_issuance = result.server_cpu_seconds / result.ok if result.ok else float("inf")
    idle = statistics.median(floor_before + floor_after)
    probed = result.probed or [float("nan")]
    floor = result.probed_floor

    print()
    print(f"crypto floor (ES256 token verify + CSR signature verify + certificate sign, "
          f"in-process, thread CPU time), measured throughout the window while the CA was "
          f"loaded: {floor * 1e6:,.0f} µs per issuance (mean of {len(result.probed)} batches of "
          f"20, one every {PROBE_INTERVAL:g} s; median {statistics.median(probed) * 1e6:,.0f} µs, "
          f"range {min(probed) * 1e6:,.0f}-{max(probed) * 1e6:,.0f} µs)")
    print(f"the same floor on the idle machine, before and after the load: {idle * 1e6:,.0f} µs "
          f"(median of {len(floor_before)} batches of 200 before, "
          f"{statistics.median(floor_before) * 1e6:,.0f} µs, and {len(floor_after)} after, "
          f"{statistics.median(floor_after) * 1e6:,.0f} µs); the CA CPU per issuance is "
          f"{per_issuance / idle:.2f}x that, for information only: a snapshot of under a second "
          f"catches whatever speed the host gives at that moment")
    mode = "keep-alive" if args.keepalive else "a new TLS connection per request"
    print(f"connections: {mode}")
    for line in report("issuance", result, floor, args.clients):
        print(line)
    ratio = per_issuance / floor
    noise = result.other_cpu_seconds / result.wall_seconds if result.wall_seconds else 0.0
    if noise > NOISY_CORES:
        print(f"NOISY RUN: other processes used {noise:.2f} cores during the window; the CA's CPU "
              "per issuance is inflated, rerun on a quiet machine")
    if baseline is not None and baseline.ok and result.ok:
        per_request = baseline.server_cpu_seconds / baseline.ok
        print(f"HTTP baseline, GET /version on the same {args.clients} clients' connections: "
              f"{baseline.rate:,.0f} requests/s, CA CPU {per_request * 1e6:,.0f} µs per request "
              f"({per_request / floor:.2f}x the floor), {baseline.errors} errors")
        print(f"  so of the CA CPU per issuance, HTTP+TLS+gunicorn+Falcon take about "
              f"{per_request * 1e6:,.0f} µs ({per_request / per_issuance:.0%}) and the sign "
              f"handler about {(per_issuance - per_request) * 1e6:,.0f} µs "
              f"({(per_issuance - per_request) / floor:.2f}x the floor)")
    probed_enough = len(result.probed) >= MIN_PROBES
    met = (probed_enough and ratio <= TARGET_RATIO and not result.errors
           and args.clients >= TARGET_CLIENTS)
    print(f"target: CA CPU per issuance <= {TARGET_RATIO:g}x the floor and 0 errors with "
          f"{TARGET_CLIENTS} concurrent clients: {'met' if met else 'NOT met'} "
          f"({ratio:.2f}x, {result.errors} errors, {args.clients} clients)")
    for sample in result.error_samples + (baseline.error_samples if baseline else []):
        print(f"  error: {sample}")
    if result.errors or not result.ok or (baseline is not None and baseline.errors):
        return 1
    if not probed_enough:
        print(f"INVALID: only {len(result.probed)} batches of the floor fell inside the window "
              f"(at least {MIN_PROBES} are needed); lengthen the window")
        return 2
    if result.ran_out:
        print("INVALID: a client spent all its tokens before the window closed, so the CA was "
              "under-loaded at the end; rerun with a higher --max-rate")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
