"""Certificates issued per second through POST /1.0/sign over HTTPS against a real step-ca.

    .venv/bin/python benchmarks/issuance.py [--clients 64] [--requests 4000] [--workers N]
                                             [--no-keepalive]

Prints issuances/s, the CA's CPU-seconds per issuance, the peak memory of its processes and,
measured in the same run, the pure-crypto floor (one ES256 verify + one CSR verify + one
certificate sign, in-process), so the ratio does not depend on the machine. Target: at most 3x
the floor and no error with 64 concurrent clients. Exits 1 if any request failed."""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _harness import CA, Job, crypto_floor, report, run_load, running_ca, sign_bodies  # noqa: E402

TARGET_RATIO = 3.0


def sign_jobs(ca: CA, clients: int, requests: int) -> list[list[Job]]:
    bodies = sign_bodies(ca, requests)
    return [[("/1.0/sign", body, {}, None) for body in bodies[i::clients]]
            for i in range(clients)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=None,
                        help="CA worker processes (default: the CA's own default)")
    parser.add_argument("--processes", type=int, default=min(4, os.cpu_count() or 1),
                        help="client processes the clients are spread over")
    parser.add_argument("--no-keepalive", dest="keepalive", action="store_false",
                        help="a new TLS connection per request")
    args = parser.parse_args()

    with running_ca(workers=args.workers) as ca:
        print(f"CA on 127.0.0.1:{ca.port}, pids {ca.process.pids()}; preparing "
              f"{args.requests} tokens and CSRs ...", flush=True)
        started = time.perf_counter()
        jobs = sign_jobs(ca, args.clients, args.requests)
        print(f"prepared in {time.perf_counter() - started:.1f} s (not measured)", flush=True)
        result = run_load(ca, jobs, keepalive=args.keepalive, processes=args.processes)
        floor = crypto_floor(ca.pki)
    print(f"crypto floor (ES256 verify + CSR verify + cert sign, in-process): "
          f"{floor * 1e6:,.0f} µs")
    for line in report("issuance", result, floor, args.clients):
        print(line)
    ratio = (result.server_cpu_seconds / result.ok) / floor if result.ok else float("inf")
    verdict = "meets" if ratio <= TARGET_RATIO and not result.errors else "MISSES"
    print(f"target (<= {TARGET_RATIO:.0f}x the floor, no errors): {verdict}")
    for sample in result.error_samples:
        print(f"  error: {sample}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
