"""``stepca.httpserver`` on a real socket in a background thread, for tests that need its
connection handling (limits, deadlines, eviction) without a whole step-ca."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ServingThread", "serving"]


class ServingThread:
    """A running ``HTTPServer``; ``call`` runs a function on its loop and returns the result."""

    def __init__(self, server: Any, address: tuple[str, int], loop: asyncio.AbstractEventLoop):
        self.server, self.address, self.loop = server, address, loop

    @property
    def port(self) -> int:
        return self.address[1]

    def call(self, function: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app that answers every request with 200 and ``hello``."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@contextmanager
def serving(app: Callable[..., Iterable[bytes]] = hello, *, limits: Any = None,
            ssl_context: Callable[[], Any] | None = None,
            host: str = "127.0.0.1") -> Iterator[ServingThread]:
    import uvloop

    from stepca.httpserver import HTTPServer, Limits

    loop = uvloop.new_event_loop()
    listener = socket.create_server((host, 0), backlog=4096)
    server = HTTPServer(app, limits or Limits(), loop=loop, log=logging.getLogger("stepca.http"),
                        ssl_context=ssl_context,
                        environ_base={"wsgi.version": (1, 0), "wsgi.multithread": False,
                                      "wsgi.multiprocess": False, "wsgi.run_once": False})
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server.listen([listener])
        loop.call_soon(started.set)
        loop.run_until_complete(server.serve(lambda: None, graceful_seconds=1))
        loop.close()

    thread = threading.Thread(target=run, name="stepca-httpserver", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield ServingThread(server, listener.getsockname()[:2], loop)
    finally:
        loop.call_soon_threadsafe(setattr, server, "alive", False)
        thread.join(10)
        listener.close()
