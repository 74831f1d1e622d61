"""Renewals per second over mutual TLS against a real step-ca, beside the issuance figure and
the crypto floor measured during each (docs/decisions/0010).

    .venv/bin/python benchmarks/renewal.py [--clients 64] [--requests 4000] [--workers N]

Each client holds a certificate the CA issued and renews it over mutual TLS on a kept-alive
connection (the old certificate stays valid, so a client may renew with it again). Exits 1 if
any request failed."""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _harness import CA, Job, floor_probe, report, run_load, running_ca
from issuance import sign_jobs
from stepca.testing import make_csr, make_token


def client_certificates(ca: CA, clients: int) -> list[tuple[str, str]]:
    """One certificate and key per client, issued through the API before measuring."""
    import http.client
    import ssl

    from stepca.x509util import encrypt_private_key

    context = ssl.create_default_context(cafile=str(ca.root))
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", ca.port, context=context)
    pairs = []
    for i in range(clients):
        subject = f"client-{i}.example.com"
        csr, key = make_csr(subject)
        token = make_token(ca.pki, subject, audience=f"https://127.0.0.1:{ca.port}/1.0/sign")
        conn.request("POST", "/1.0/sign", body=json.dumps({"csr": csr, "ott": token}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 201:
            raise SystemExit(f"could not issue client certificates: {answer}")
        crt, key_file = ca.tmp / f"client-{i}.crt", ca.tmp / f"client-{i}.key"
        crt.write_text("".join(answer["certChain"]))
        key_file.write_bytes(encrypt_private_key(key, None))
        pairs.append((str(crt), str(key_file)))
    conn.close()
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--processes", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()

    with running_ca(workers=args.workers) as ca:
        print(f"CA on 127.0.0.1:{ca.port}; issuing {args.clients} client certificates and "
              f"{args.requests} sign requests (not measured) ...", flush=True)
        pairs = client_certificates(ca, args.clients)
        probe = floor_probe(ca.pki)
        issuance = run_load(ca, sign_jobs(ca, args.clients, args.requests), keepalive=True,
                            processes=args.processes, probe=probe)
        per_client = max(1, args.requests // args.clients)
        renew_jobs: list[list[Job]] = [[("/1.0/renew", b"", {}, pair)] * per_client
                                       for pair in pairs]
        renewal = run_load(ca, renew_jobs, keepalive=True, processes=args.processes, probe=probe)
    for label, result in (("issuance", issuance), ("renewal", renewal)):
        floor = result.probed_floor
        print(f"crypto floor during the {label}s (ES256 verify + CSR verify + cert sign, "
              f"in-process, mean of {len(result.probed)} batches): {floor * 1e6:,.0f} µs")
        for line in report(label, result, floor, args.clients):
            print(line)
    for sample in issuance.error_samples + renewal.error_samples:
        print(f"  error: {sample}")
    return 1 if issuance.errors or renewal.errors else 0


if __name__ == "__main__":
    sys.exit(main())
