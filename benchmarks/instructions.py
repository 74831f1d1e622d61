"""Instructions per issuance, counted by valgrind's callgrind: the same to a fraction of a per cent
from run to run, whatever else the machine is doing, where CPU time moves by ±20%. A guide for
changes too small for `issuance.py` to see, not the target's measure (instructions in
interpreted Python cost more time than instructions in OpenSSL).

Counts, in-process, (1) one issuance through the Falcon app: the JSON body, `Authority.sign`
with SQLite, the JSON answer and the access-log line (no TLS, no HTTP parsing), and (2) the
crypto floor of `issuance.py` (one ES256 token verify, one CSR verify, one certificate sign).
Each is the difference between a run of --large and a run of --small operations, so start-up
cancels out.

    .venv/bin/python benchmarks/instructions.py [--small 50] [--large 250]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def prepare(folder: Path, count: int) -> None:
    """A PKI, a ca.json and ``count`` CSRs with their tokens, made outside the counted runs."""
    from datetime import timedelta

    from stepca.testing import make_csr, make_pki, make_token

    pki = make_pki(folder / "pki")
    # Tokens are made before the counted CA starts: let it accept tokens issued before it.
    config = pki.config(folder, authority={"disableIssuedAtCheck": True})
    jobs = []
    for i in range(count):
        csr, _ = make_csr(f"host{i}.example.com")
        jobs.append({"csr": csr, "ott": make_token(pki, f"host{i}.example.com",
                                                  audience="https://localhost:9000/1.0/sign",
                                                  lifetime=timedelta(minutes=30))})
    (folder / "jobs.json").write_text(json.dumps(jobs))
    (folder / "config-path").write_text(str(config))


def run_issuances(folder: Path, count: int) -> None:
    from stepca.app import create_app
    from stepca.logs import configure_logging
    from stepca.testing import TestCA

    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the access-log lines
    configure_logging()
    shutil.rmtree(folder / "db", ignore_errors=True)
    ca = TestCA(Path((folder / "config-path").read_text()))
    app = create_app(ca.authority, access_log=True)
    environ = {"wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
               "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.url_scheme": "https",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9000", "REMOTE_ADDR": "127.0.0.1",
               "REMOTE_PORT": "50000", "REQUEST_METHOD": "POST", "SCRIPT_NAME": "",
               "PATH_INFO": "/1.0/sign", "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1",
               "CONTENT_TYPE": "application/json", "HTTP_HOST": "localhost:9000"}
    bodies = [json.dumps(job).encode() for job in json.loads((folder / "jobs.json").read_text())]
    for body in bodies[:count]:
        status: list[str] = []
        answer = b"".join(app({**environ, "wsgi.input": io.BytesIO(body),
                               "CONTENT_LENGTH": str(len(body))},
                              lambda s, h, e=None, status=status: status.append(s)))
        if not status[0].startswith("201"):
            raise SystemExit(f"issuance failed: {status[0]} {answer[:300]!r}")


def run_floor(folder: Path, count: int) -> None:
    from _harness import crypto_floor_samples
    from stepca.testing import make_pki

    crypto_floor_samples(make_pki(folder / f"floor-pki-{count}"), batches=1, per_batch=count,
                         warmup=0)


def count_instructions(kind: str, folder: Path, count: int) -> int:
    out = folder / f"callgrind.{kind}.{count}"
    log = folder / f"valgrind.{kind}.{count}.log"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    f"--log-file={log}", sys.executable, __file__, "--child", kind,
                    str(folder), str(count)],
                   check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", log.read_text())
    if not found:
        raise SystemExit(f"valgrind printed no count:\n{log.read_text()}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=250)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder, count = args.child
        (run_issuances if kind == "issuance" else run_floor)(Path(folder), int(count))
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    if not 0 < args.small < args.large:
        parser.error("0 < --small < --large")
    with tempfile.TemporaryDirectory(prefix="stepca-instructions-") as tmp:
        folder = Path(tmp)
        prepare(folder, args.large)
        print(f"counting {args.small} and {args.large} of each under callgrind "
              "(a few minutes) ...", flush=True)
        per_op = {}
        for kind in ("issuance", "floor"):
            small = count_instructions(kind, folder, args.small)
            large = count_instructions(kind, folder, args.large)
            per_op[kind] = (large - small) / (args.large - args.small)
    issuance, floor = per_op["issuance"], per_op["floor"]
    print(f"instructions per issuance, in-process app path: {issuance:,.0f}")
    print(f"instructions per crypto floor:                  {floor:,.0f}")
    print(f"ratio: {issuance / floor:.2f}x (instructions, not time: see this file's docstring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
