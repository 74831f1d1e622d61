"""How long `step` takes to start and finish, as a whole process, against a bare
`python -c pass` of the same interpreter (issue 17).

Each command runs in pairs with the bare start, alternating (bare, command, bare, command, ...)
so that whatever else the machine does weighs on both alike. The figures are the medians of
wall time and the ratio of the two medians, and the same for the child's user+system CPU
(which other processes on the machine disturb less). `step ca certificate` runs against a real
step-ca on 127.0.0.1 (benchmarks/_harness.py), with a fresh one-time token per run, made before
the runs. Nothing here is asserted in tests.

    .venv/bin/python benchmarks/cli.py [--pairs 30] [--only version,path,...]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STEP = str(Path(sys.executable).parent / "step")
BARE = [sys.executable, "-c", "pass"]


@dataclass(frozen=True)
class Case:
    name: str
    target: float  # the bound on the ratio of medians
    argv: Callable[[int], list[str]]  # run index -> the command line
    needs_ca: bool = False


@dataclass(frozen=True)
class Figures:
    """Medians over the runs, in seconds: wall time, and the child's user+system CPU."""

    wall: float
    cpu: float


def _run(argv: Sequence[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
                          check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace').strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def measure(case: Case, pairs: int, env: dict[str, str], cwd: str) -> tuple[Figures, Figures]:
    """(bare start, command), each run ``pairs`` times in alternation."""
    _run(BARE, env, cwd)  # warm the page cache (and write bytecode) before counting
    _run(case.argv(pairs), env, cwd)
    bare, command = [], []
    for index in range(pairs):
        bare.append(_run(BARE, env, cwd))
        command.append(_run(case.argv(index), env, cwd))

    def figures(runs: list[tuple[float, float]]) -> Figures:
        return Figures(statistics.median(r[0] for r in runs),
                       statistics.median(r[1] for r in runs))

    return figures(bare), figures(command)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30,
                        help="runs of each command, each paired with a bare start")
    parser.add_argument("--only", default="",
                        help="comma-separated case names (help, path, version, inspect, ca)")
    args = parser.parse_args(argv)

    from stepca.testing import make_token

    import _harness

    with tempfile.TemporaryDirectory(prefix="stepca-bench-cli-") as folder:
        tmp = Path(folder)
        # PYTHONDONTWRITEBYTECODE would compile every module from source on each start: an
        # installed step has its bytecode cached (pip compiles it), so the runs have it too
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("STEP") and k != "PYTHONDONTWRITEBYTECODE"}
        env["STEPPATH"] = str(tmp / "step")
        crt = tmp / "c.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp / "c.key"),
                        "-out", str(crt), "-subj", "/CN=c", "-days", "2"],
                       check=True, capture_output=True)
        tokens: list[str] = []
        cases = [
            Case("help", 5, lambda i: [STEP, "--help"]),
            Case("path", 5, lambda i: [STEP, "path"]),
            Case("version", 5, lambda i: [STEP, "version"]),
            Case("inspect", 8, lambda i: [STEP, "certificate", "inspect", "--short", str(crt)]),
            Case("ca", 12, lambda i: [STEP, "ca", "certificate", "name", "c.crt", "c.key",
                                      "--token", tokens[i], "--force"], needs_ca=True),
        ]
        only = {n.strip() for n in args.only.split(",") if n.strip()}
        chosen = [c for c in cases if not only or c.name in only]
        labels = {"help": "step --help", "path": "step path", "version": "step version",
                  "inspect": "step certificate inspect --short c.crt",
                  "ca": "step ca certificate name c.crt c.key --token T"}
        print(f"{args.pairs} pairs per command; bare start: {' '.join(BARE)}; medians; the "
              "target bounds the ratio of wall times")
        print(f"{'command':47} {'bare':>7} {'command':>8} {'ratio':>6} {'target':>6}"
              f"         {'CPU: bare':>9} {'command':>8} {'ratio':>6}")
        for case in chosen:
            if case.needs_ca:
                with _harness.running_ca(workers=1) as ca:
                    url = f"https://{_harness.HOST}:{ca.port}"
                    # made before the runs, all within the tokens' five minutes
                    tokens[:] = [make_token(ca.pki, "name", sans=["name"],
                                            audience=f"{url}/1.0/sign")
                                 for _ in range(args.pairs + 1)]
                    ca_env = {**env, "STEP_CA_URL": url, "STEP_ROOT": str(ca.root)}
                    bare, command = measure(case, args.pairs, ca_env, str(tmp))
            else:
                bare, command = measure(case, args.pairs, env, str(tmp))
            ratio = command.wall / bare.wall
            verdict = "ok" if ratio <= case.target else "missed"
            print(f"{labels[case.name]:47} {bare.wall * 1000:5.1f}ms {command.wall * 1000:6.1f}ms "
                  f"{ratio:5.1f}x {case.target:5.0f}x {verdict:>7}  "
                  f"{bare.cpu * 1000:7.1f}ms {command.cpu * 1000:6.1f}ms "
                  f"{command.cpu / bare.cpu:5.1f}x", flush=True)

if __name__ == "__main__":
    main()
