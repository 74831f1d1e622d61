"""The gunicorn worker ``step-ca`` runs: one event loop per process (uvloop), TLS and HTTP/1.1
parsing (httptools) without threads, and the WSGI app called inline.

Issuance is CPU-bound and never waits on the network, so a request is handled to the end on the
loop's thread: no thread pool, no hand-off, no blocking read. A slow or silent client holds only
its own connection (read deadlines), never the worker. gunicorn still owns the master,
the listeners, the heartbeat and the signals; see docs/decisions/0007-event-loop-worker.md.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools
import uvloop
from gunicorn.workers import base

__all__ = ["EventLoopWorker", "following"]

HANDSHAKE_SECONDS = 10.0  # a TLS handshake must finish within this
_NO_BODY_STATUSES = frozenset({204, 304})
_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large",
            414: "URI Too Long", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


class _Date:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("latin-1")
        return self._value


class _RequestTooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Request:
    """One request as httptools hands it over, bounded by the worker's limits."""

    __slots__ = ("body", "body_size", "headers", "limits", "method", "url", "version")

    def __init__(self, limits: _Limits) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.limits = limits
        self.method = "GET"
        self.version = "1.1"


class _Limits:
    __slots__ = ("body", "field_size", "fields", "line")

    def __init__(self, line: int, fields: int, field_size: int, body: int) -> None:
        self.line, self.fields, self.field_size, self.body = line, fields, field_size, body


class _Connection(asyncio.Protocol):
    """One client connection, from the end of its TLS handshake (asyncio's, bounded by
    HANDSHAKE_SECONDS) on: requests in, answers out, in order."""

    def __init__(self, worker: EventLoopWorker) -> None:
        self.worker = worker
        self.loop = worker.loop
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.request: _Request | None = None
        self.complete: list[tuple[_Request, bool]] = []
        self.deadline = 0.0  # loop time after which the worker's sweep closes this connection
        self.closing = False
        self.peer: tuple[str, int] = ("", 0)
        self.environ_base: dict[str, Any] = {}

    # -- connection life ------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        worker = self.worker
        if len(worker.connections) >= worker.max_connections or not worker.alive:
            transport.abort()
            return
        self.transport = transport
        worker.connections.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        server = transport.get_extra_info("sockname") or ("", 0)
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self.environ_base = {
            **worker.environ_base,
            "wsgi.url_scheme": "https" if ssl_object is not None else "http",
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": str(self.peer[0]),
            "REMOTE_PORT": str(self.peer[1]),
            # The TLS object answers getpeercert(), as gunicorn's socket does (decision 0005).
            "gunicorn.socket": ssl_object,
        }
        self.deadline = self.loop.time() + worker.keepalive

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.connections.discard(self)
        self.closing = True

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # a client that does not read gets no more answers

    def resume_writing(self) -> None:
        if not self.closing:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close once what is written has left; a client that will not read it is cut off
        after another keep-alive period (the worker's sweep)."""
        if not self.closing:
            self.closing = True
            self.deadline = self.loop.time() + self.worker.keepalive
            self.transport.close()

    # -- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        refusal: tuple[int, str] | None = None
        try:
            self.parser.feed_data(data)
        except _RequestTooLarge as exc:
            refusal = (exc.status, str(exc))
        except httptools.HttpParserUpgrade:
            refusal = (400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            cause = exc.__cause__ or exc.__context__  # httptools chains a callback's exception
            refusal = ((cause.status, str(cause)) if isinstance(cause, _RequestTooLarge)
                       else (400, "malformed HTTP request"))
        if self.complete:  # requests whole before a bad one still get their answers first
            self._respond_all()
        if refusal:
            self.refuse(*refusal)

    def on_message_begin(self) -> None:
        self.request = _Request(self.worker.limits)
        self.deadline = self.loop.time() + self.worker.request_seconds

    def on_url(self, url: bytes) -> None:
        request = self.request
        request.url += url
        if len(request.url) > request.limits.line:
            raise _RequestTooLarge(414, "the request line is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.request
        limits = request.limits
        if len(request.headers) >= limits.fields:
            raise _RequestTooLarge(431, "too many request headers")
        if len(name) + len(value) > limits.field_size:
            raise _RequestTooLarge(431, "a request header is too long")
        request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self.request
        request.method = self.parser.get_method().decode("latin-1")
        request.version = self.parser.get_http_version()
        length, expect_continue = None, False
        for name, value in request.headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)  # llhttp has checked it is a number, and only one
            elif lower == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        if length is not None and length > request.limits.body:
            raise _RequestTooLarge(413, f"the request body is larger than "
                                        f"{request.limits.body} bytes")
        if expect_continue and request.version == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        request = self.request
        request.body_size += len(body)
        if request.body_size > request.limits.body:
            raise _RequestTooLarge(413, f"the request body is larger than "
                                        f"{request.limits.body} bytes")
        request.body.append(body)

    def on_message_complete(self) -> None:
        self.complete.append((self.request, self.parser.should_keep_alive()))
        self.request = None

    # -- answering ------------------------------------------------------------------------

    def _respond_all(self) -> None:
        complete, self.complete = self.complete, []
        for request, keep_alive in complete:
            if self.closing:
                return
            keep_alive = keep_alive and self.worker.alive
            self._respond(request, keep_alive)
            if not keep_alive:
                self.close()
                return
        if self.request is None:
            self.deadline = self.loop.time() + self.worker.keepalive

    def _environ(self, request: _Request) -> dict[str, Any]:
        path, _, query = request.url.partition(b"?")
        body = b"".join(request.body)
        environ = {
            **self.environ_base,
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "RAW_URI": request.url.decode("latin-1"),
            "SERVER_PROTOCOL": "HTTP/" + request.version,
            "wsgi.input": io.BytesIO(body),
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in request.headers:
            key = name.decode("latin-1").upper()
            if "_" in key:
                continue  # "X_Foo" would alias "X-Foo" in the environ: drop it (as gunicorn does)
            text = value.decode("latin-1")
            if key == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = text
                continue
            if key == "CONTENT-LENGTH":
                continue  # set above from the body actually read
            key = "HTTP_" + key.replace("-", "_")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def _respond(self, request: _Request, keep_alive: bool) -> None:
        worker = self.worker
        environ = self._environ(request)
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        try:
            result: Iterable[bytes] = worker.wsgi(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            worker.log.exception("error handling %s %s", environ["REQUEST_METHOD"],
                                 environ["PATH_INFO"])
            self.refuse(500, "internal server error")
            return
        if not started:
            self.refuse(500, "internal server error")
            return
        worker.count_request()
        status, headers = started
        code = int(status[:3])
        body = b"".join(chunks)
        head = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\nDate: ", worker.date(), b"\r\n"]
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                has_length = True
            elif lower == "connection":
                continue
            head += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        no_body = code in _NO_BODY_STATUSES or code < 200
        if not has_length and not no_body:
            head += [b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if not no_body and request.method != "HEAD":
            head.append(body)
        self.transport.write(b"".join(head))

    def refuse(self, status: int, message: str) -> None:
        """Answer a request the worker itself refuses, in step-ca's error shape, and close."""
        if self.closing:
            return
        body = json.dumps({"status": status, "message": message}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, _REASONS.get(status, "Error").encode(), self.worker.date(), len(body),
               body))
        self.close()


def following(current: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """A server context whose handshakes switch to whatever ``current()`` returns then: asyncio
    keeps the context it is given, and ours is replaced when the server certificate renews."""
    first = current()

    def switch(ssl_object: ssl.SSLObject, server_name: str | None,
               context: ssl.SSLContext) -> None:
        latest = current()
        if latest is not context:
            ssl_object.context = latest

    first.sni_callback = switch  # OpenSSL calls it for every ClientHello, with or without SNI
    return first


class EventLoopWorker(base.Worker):  # type: ignore[misc]
    """gunicorn worker: uvloop, httptools, the WSGI app inline (see the module docstring)."""

    # build_server sets the CA's own limits on a subclass
    max_body = 64 * 1024
    request_seconds = 30.0  # a request, once its first byte has arrived, must be whole by then

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.connections: set[_Connection] = set()
        self.max_connections = self.cfg.worker_connections
        self.keepalive = float(self.cfg.keepalive or 0) or 0.001
        self.limits = _Limits(self.cfg.limit_request_line or 8190,
                              self.cfg.limit_request_fields or 100,
                              self.cfg.limit_request_field_size or 8190, self.max_body)
        self.date = _Date()
        self.servers: list[asyncio.AbstractServer] = []
        self.environ_base: dict[str, Any] = {}

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

    def _stop_now(self) -> None:
        self.alive = False
        self.cfg.worker_int(self)
        os._exit(0)

    def _abort(self) -> None:
        self.alive = False
        self.cfg.worker_abort(self)
        os._exit(1)

    def count_request(self) -> None:
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False

    def run(self) -> None:
        self.environ_base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": self.cfg.workers > 1,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        context = None
        if self.cfg.is_ssl:
            context = following(lambda: self.cfg.ssl_context(self.cfg, None))
        for listener in self.sockets:
            listener.setblocking(False)
            self.servers.append(await self.loop.create_server(
                lambda: _Connection(self), sock=listener.sock, backlog=self.cfg.backlog,
                ssl=context, ssl_handshake_timeout=HANDSHAKE_SECONDS if context else None))
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            self._close_overdue()
            await asyncio.sleep(1.0)
        for server in self.servers:
            server.close()
        # Idle connections close now; one in the middle of a request gets its answer first
        # (with "Connection: close"), within the graceful timeout.
        deadline = self.loop.time() + self.cfg.graceful_timeout
        for conn in list(self.connections):
            if conn.request is None and not conn.complete:
                conn.close()
        while self.connections and self.loop.time() < deadline:
            self.notify()
            self._close_overdue()
            await asyncio.sleep(0.1)
        for conn in list(self.connections):
            conn.transport.abort()

    def _close_overdue(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            if conn.deadline < now:
                if conn.closing:
                    conn.transport.abort()
                elif conn.request is not None:
                    conn.refuse(408, "the request was not received in time")
                else:
                    conn.close()
