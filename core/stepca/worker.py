"""The gunicorn worker ``step-ca`` runs: one event loop per process (uvloop) serving the WSGI app
through ``stepca.httpserver`` (TLS, HTTP/1.1 with httptools, every wait and buffer bounded).

gunicorn still owns the master, the listeners, the heartbeat and the signals; see
docs/decisions/0007-event-loop-worker.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

import uvloop
from gunicorn import sock as gunicorn_sock
from gunicorn.workers import base

from stepca.httpserver import HTTPServer, Limits, SharedLoad

__all__ = ["EventLoopWorker"]

log = logging.getLogger("stepca.http")

# gunicorn settings this worker does not carry out, with what to use instead. Set, they would
# silently do nothing, so the server refuses to start.
UNSUPPORTED_SETTINGS = {
    "accesslog": "stepca writes its own access log (logger stepca.access) to stderr",
    "statsd_host": "statsd metrics are not sent by this worker",
    "proxy_protocol": "the PROXY protocol is not read by this worker",
}


class EventLoopWorker(base.Worker):  # type: ignore[misc]
    """gunicorn worker: uvloop and ``stepca.httpserver`` (see the module docstring)."""

    # step-ca sets its ca.json limits on a subclass; used alone, gunicorn's settings apply
    limits: Limits | None = None
    # made by the master with its first worker, before that worker is forked
    shared_load: SharedLoad | None = None

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Called by gunicorn's master before any worker starts."""
        found = [name for name in UNSUPPORTED_SETTINGS
                 if name in cfg.settings and cfg.settings[name].value != cfg.settings[name].default]
        if found:
            raise RuntimeError("; ".join(f"gunicorn setting '{name}' is not supported by "
                                         f"stepca's worker: {UNSUPPORTED_SETTINGS[name]}"
                                         for name in found))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.server: HTTPServer | None = None
        # in the master: every worker's slot is claimed before it is forked
        if EventLoopWorker.shared_load is None:
            EventLoopWorker.shared_load = SharedLoad()
        self.load_slot = EventLoopWorker.shared_load.claim()

    def _limits(self) -> Limits:
        if self.limits is not None:
            return self.limits
        cfg = self.cfg
        return Limits(request_line=cfg.limit_request_line or 8190,
                      header_fields=cfg.limit_request_fields or 100,
                      header_field=cfg.limit_request_field_size or 8190,
                      keep_alive_seconds=float(cfg.keepalive or 0) or 0.001,
                      connections=cfg.worker_connections,
                      connections_per_client=max(1, cfg.worker_connections // 4))

    def init_process(self) -> None:
        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def init_signals(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        self.loop.add_signal_handler(signal.SIGTERM, self._stop_gracefully)
        self.loop.add_signal_handler(signal.SIGQUIT, self._stop_now)
        self.loop.add_signal_handler(signal.SIGINT, self._stop_now)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGABRT, self._abort)
        signal.signal(signal.SIGWINCH, signal.SIG_IGN)

    def _stop_gracefully(self) -> None:
        self.alive = False
        if self.server is not None:
            self.server.alive = False

    def _stop_now(self) -> None:
        self._stop_gracefully()
        self.cfg.worker_int(self)
        os._exit(0)

    def _abort(self) -> None:
        self._stop_gracefully()
        self.cfg.worker_abort(self)
        os._exit(1)

    def _count_request(self) -> None:
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self._stop_gracefully()

    def _tick(self) -> None:
        self.notify()
        if self.alive and self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self._stop_gracefully()

    def run(self) -> None:
        cfg = self.cfg
        load = EventLoopWorker.shared_load
        seat = load.seat(self.load_slot) if load is not None and self.load_slot is not None \
            else None
        self.server = HTTPServer(
            self.wsgi, self._limits(), loop=self.loop, log=log,
            # asked per connection, so a renewed server certificate reaches new handshakes
            ssl_context=(lambda: gunicorn_sock.ssl_context(cfg)) if cfg.is_ssl else None,
            environ_base={
                "wsgi.version": (1, 0),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": False,
                "wsgi.multiprocess": cfg.workers > 1,
                "wsgi.run_once": False,
                "wsgi.input_terminated": True,
            },
            on_response=self._count_request, seat=seat)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            if seat is not None:
                seat.leave()
            self.loop.close()

    async def _serve(self) -> None:
        self.server.listen(listener.sock for listener in self.sockets)
        await self.server.serve(self._tick, graceful_seconds=self.cfg.graceful_timeout)
