"""The retention job: forget spent token ids whose tokens have expired and, if configured,
certificates long expired (docs/decisions/0028).

ca.json, our addition inside step-ca's ``db`` object::

    "db": {"type": "sqlite", "dataSource": "...",
           "retention": {"interval": "1h", "keepExpiredCertificates": "2160h"}}

``step-ca`` runs it in one child process of the gunicorn master (which itself runs no thread):
once when the child starts, then every ``interval``; never on a request's path.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_exit
from datetime import datetime, timedelta
from typing import Any

from stepca.config import ConfigError
from stepca.store import CertificateStore, Purged
from stepca.timeutil import parse_duration, utcnow

__all__ = ["PROCESS_NAME", "RetentionPolicy", "RetentionProcess", "TOKEN_ID_GRACE",
           "purge_once"]

log = logging.getLogger("stepca.retention")

TOKEN_ID_GRACE = timedelta(hours=1)
"""How long a spent id is kept after its token is refused anyway: clocks of several CA
instances sharing one database may disagree that much without a replay getting through."""
MIN_INTERVAL = timedelta(minutes=1)
PROCESS_NAME = "step-ca-retain"
"""The child's name in ``ps -o comm`` (Linux), telling it from the gunicorn workers."""


@dataclass(frozen=True)
class RetentionPolicy:
    interval: timedelta = timedelta(hours=1)
    keep_expired_certificates: timedelta | None = None
    """How long a certificate is kept once expired; None: for ever."""

    @classmethod
    def from_db_config(cls, db: Mapping[str, Any] | None) -> RetentionPolicy:
        raw = (db or {}).get("retention")
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError("ca.json db.retention must be an object")
        unknown = sorted(set(raw) - {"interval", "keepExpiredCertificates"})
        if unknown:
            raise ConfigError(f"ca.json db.retention: unknown key(s) {', '.join(unknown)}")
        interval = _duration(raw, "interval")
        if interval is None:
            interval = cls.interval
        elif interval < MIN_INTERVAL:
            raise ConfigError("ca.json db.retention.interval must be at least 1m")
        return cls(interval=interval,
                   keep_expired_certificates=_duration(raw, "keepExpiredCertificates"))

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime | None]:
        """Token ids whose token expired before the first, certificates expired before the
        second (None: none), are purged."""
        certificates = (now - self.keep_expired_certificates
                        if self.keep_expired_certificates is not None else None)
        return now - TOKEN_ID_GRACE, certificates


def _duration(raw: Mapping[str, Any], key: str) -> timedelta | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        duration = parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"ca.json db.retention.{key}: {exc}") from None
    if duration < timedelta(0):
        raise ConfigError(f"ca.json db.retention.{key} cannot be negative")
    return duration


def purge_once(store: CertificateStore, policy: RetentionPolicy,
               now: datetime | None = None) -> Purged:
    tokens_before, certificates_before = policy.cutoffs(now or utcnow())
    purged = store.purge(token_ids_expired_before=tokens_before,
                         certificates_expired_before=certificates_before)
    if purged.token_ids or purged.certificates:
        log.info("retention: purged %d spent token id(s) and %d expired certificate(s)",
                 purged.token_ids, purged.certificates)
    return purged


class RetentionProcess:
    """The job in a forked child of the calling process: it purges at once, then every
    ``policy.interval``, until it is stopped or its parent dies. A failed purge is logged and
    retried at the next interval."""

    def __init__(self, store: CertificateStore, policy: RetentionPolicy,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store, self.policy, self.clock = store, policy, clock
        self.process: multiprocessing.process.BaseProcess | None = None

    def start(self, timeout: float = 10) -> None:
        """Fork the child; return once it has taken its name, so that whoever lists the
        parent's children next (gunicorn forks its workers after this) can tell it apart."""
        # the child opens its own connections: SQLite's must not cross a fork, nor may the
        # thread that checkpoints them (the store's contract: close before a process forks)
        self.store.close()
        named, tell = os.pipe()
        try:
            self.process = multiprocessing.get_context("fork").Process(
                target=self._run, args=(tell,), name=PROCESS_NAME)
            self.process.start()
            ready, _, _ = select.select([named], [], [], timeout)
            if not ready:
                log.warning("retention: the process took more than %s s to start", timeout)
        finally:
            os.close(named)
            os.close(tell)

    def _run(self, tell: int) -> None:
        try:
            with open("/proc/self/comm", "w") as comm:
                comm.write(PROCESS_NAME)
        except OSError:  # not Linux: the name only helps operators and tests
            pass
        os.write(tell, b"1")
        os.close(tell)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _exit_now)  # gunicorn's handlers belong to the master
        for signum in (signal.SIGHUP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGUSR1,
                       signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        parent = os.getppid()
        try:
            while True:
                try:
                    purge_once(self.store, self.policy, self.clock())
                except Exception as exc:  # the store may be busy or away: try again later
                    log.warning("retention: purge failed, retrying in %s: %s",
                                self.policy.interval, exc)
                deadline = time.monotonic() + self.policy.interval.total_seconds()
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, 1.0))
                    if os.getppid() != parent:  # the master died without telling us
                        return
        finally:
            self.store.close()
            os._exit(0)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL. Waits on the child's sentinel, not on ``waitpid``: gunicorn's
        master reaps every child that exits, its own workers or not."""
        if self.process is None or self.process.sentinel is None:
            return
        self.process.terminate()  # a child already gone is not an error
        if not wait_for_exit([self.process.sentinel], timeout):
            self.process.kill()
            wait_for_exit([self.process.sentinel], timeout)


def _exit_now(signum: int, frame: Any) -> None:
    raise SystemExit(0)  # unwinds a purge's transaction (rolled back), then _run exits
