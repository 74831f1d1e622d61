"""What durability costs the SQLite store, in-process (docs/decisions/0011).

    .venv/bin/python benchmarks/durability.py [--batches 6] [--ops 300] [--dir DIR]

Times the write of one issuance (``store_certificate``: the certificate and its token id, one
transaction) and of one revocation (``revoke``), each with the commit under
``synchronous=NORMAL`` and under ``FULL``, in alternating batches on fresh databases in DIR
(default: the system's temporary folder, on the disk a CA would use). Prints the median over
batches of the wall time (the fsync included) and the thread CPU time per operation."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stepca.testing.contracts import _leaf, _revocation, _token_id
from stepca_store_sqlite import SQLiteStore


class EveryCommit(SQLiteStore):
    """The store with one synchronous level for every transaction, revocations included."""

    def __init__(self, path: Path, level: str) -> None:
        self.level = level
        super().__init__(path)

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator:
        conn = self._connection()
        conn.execute(f"PRAGMA synchronous={self.level}")
        with super()._transaction() as conn:
            yield conn


def batch(folder: Path, level: str, ops: int, work: Callable[[SQLiteStore, int], None],
          setup: Callable[[SQLiteStore, int], None] | None = None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        store = EveryCommit(Path(scratch) / "stepca.db", level)
        if setup:
            for i in range(ops):
                setup(store, i)
        wall, cpu = time.perf_counter(), time.thread_time()
        for i in range(ops):
            work(store, i)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        store.close()
    return wall / ops, cpu / ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    certs = [_leaf() for _ in range(args.ops)]

    def issue(store: SQLiteStore, i: int) -> None:
        store.store_certificate(certs[i], provisioner=None, token_id=_token_id())

    def revoke(store: SQLiteStore, i: int) -> None:
        store.revoke(_revocation(certs[i].serial_number, token_id=_token_id()))

    for label, work, setup in (("issuance write", issue, None),
                               ("revocation", revoke, issue)):
        results: dict[str, list[tuple[float, float]]] = {"NORMAL": [], "FULL": []}
        for n in range(args.batches):
            for level in ("NORMAL", "FULL") if n % 2 == 0 else ("FULL", "NORMAL"):
                results[level].append(batch(args.dir, level, args.ops, work, setup))
        for level, runs in results.items():
            walls, cpus = [w * 1e6 for w, _ in runs], [c * 1e6 for _, c in runs]
            print(f"{label:15} synchronous={level:6}  wall {statistics.median(walls):5,.0f} µs "
                  f"(batches {min(walls):,.0f}-{max(walls):,.0f}), CPU "
                  f"{statistics.median(cpus):5,.0f} µs ({min(cpus):,.0f}-{max(cpus):,.0f}) "
                  f"per operation, {args.batches} batches of {args.ops}")


if __name__ == "__main__":
    main()
