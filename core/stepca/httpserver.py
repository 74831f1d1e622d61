"""HTTP/1.1 for a WSGI app on an asyncio loop, bounded at every step: step-ca's edge.

The gunicorn worker serves the HTTPS port with it (``stepca.worker``) and the plain-HTTP
listener serves ``insecureAddress`` with it (``stepca.server``). A request is handled to the end
on the loop's thread, since issuance is CPU-bound and never waits on the network. Every wait for a
client has a deadline, every buffer a bound, and connections are capped per process and per
client address: when full, the connection that has waited longest on its client (the oldest idle
or the slowest) is dropped to admit the new one (docs/decisions/0007).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import io
import mmap
import os
import resource
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from stepca.gojson import json_body
from stepca.logs import escape

__all__ = ["HTTPServer", "Limits", "connection_capacity"]

_NO_BODY_STATUSES = frozenset({204, 304})
_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large",
            414: "URI Too Long", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}
RESERVED_FDS = 128  # descriptors a process keeps for its database, logs, listeners and loop
DEFAULT_MAX_CONNECTIONS = 4096  # per process; also bounded by the descriptors it may open
ACCEPT_DEFERRAL_SECONDS = 0.002  # a worker holding more connections than another waits this
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True)
class Limits:
    """What one process accepts from its clients; ``step-ca`` reads them from ca.json's
    ``server`` block."""

    request_line: int = 8190
    header_fields: int = 100
    header_field: int = 8190
    head: int = 64 * 1024
    """Request line and headers together, counted as they arrive."""
    body: int = 64 * 1024
    handshake_seconds: float = 10.0
    header_seconds: float = 10.0
    """From a request's first byte to the end of its headers."""
    body_seconds: float = 30.0
    """From the end of the headers to the end of the body."""
    keep_alive_seconds: float = 5.0
    """An idle connection between requests; also how long a closing one may take to drain."""
    connections: int = DEFAULT_MAX_CONNECTIONS
    connections_per_client: int = DEFAULT_MAX_CONNECTIONS // 4


def connection_capacity() -> int:
    """Connections one process can hold: its descriptor limit, raised to the hard limit as Go
    programs do, less a reserve, and at most ``DEFAULT_MAX_CONNECTIONS``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DEFAULT_MAX_CONNECTIONS + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(16, min(DEFAULT_MAX_CONNECTIONS, soft - RESERVED_FDS))


class _Phase(enum.Enum):
    """What a connection waits for; each has its own deadline."""

    HANDSHAKE = "handshake"
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    CLOSING = "closing"


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


class _Request:
    """One request as httptools hands it over."""

    __slots__ = ("body", "body_size", "headers", "method", "url", "version")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.method = "GET"
        self.version = "1.1"


def client_host(address: Any) -> str:
    """A client's address as Go reports it: an IPv4 client of a dual-stack socket
    (``::ffff:127.0.0.1``) is ``127.0.0.1``."""
    host = str(address[0]) if address else ""
    if host.startswith("::ffff:") and "." in host:
        return host[len("::ffff:"):]
    return host


class _Connection(asyncio.Protocol):
    """One client connection from its accept on: the TLS handshake (if any), then requests in
    and answers out, in order."""

    def __init__(self, server: HTTPServer, sock: socket.socket, client: str) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.socket: socket.socket | None = sock  # until the transport takes it over
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.request: _Request | None = None
        self.complete: list[tuple[_Request, bool]] = []
        self.phase: _Phase | None = None  # None: not (or no longer) counted by the server
        self.since = 0.0  # loop time the current phase began
        self.closing = False
        self.client = client
        self.environ_base: dict[str, Any] = {}
        self.in_head = True  # reading a request line and headers (or waiting for one)
        self.head_left = self.limits.head
        self._task: asyncio.Task[None] | None = None

    # -- connection life ------------------------------------------------------------------

    def start(self) -> None:
        """Hand the accepted socket to the loop: the TLS handshake first, if any. Until it is
        done the connection is counted (in the handshake phase), bounded by its deadline and
        can be dropped."""
        self._task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        context = self.server.ssl_context
        try:
            if context is None:
                await self.loop.connect_accepted_socket(lambda: self, self.socket)
            else:
                await self.loop.connect_accepted_socket(
                    lambda: self, self.socket, ssl=context(),
                    ssl_handshake_timeout=self.limits.handshake_seconds)
        except Exception:  # noqa: BLE001 - a failed or abandoned handshake has no one to answer
            self.closing = True
            self.server.forget(self)  # the loop has closed the socket

    def connection_made(self, transport: Any) -> None:
        self.socket = None
        self.transport = transport
        if self.phase is not _Phase.HANDSHAKE:  # dropped before it was ready
            transport.abort()
            return
        self._ready(transport)

    def _ready(self, transport: Any) -> None:
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        server = transport.get_extra_info("sockname") or ("", 0)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.environ_base = {
            **self.server.environ_base,
            "wsgi.url_scheme": "https" if ssl_object is not None else "http",
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": self.client,
            "REMOTE_PORT": str(peer[1]),
            # The TLS object answers getpeercert(), as gunicorn's socket does (decision 0005).
            "gunicorn.socket": ssl_object,
        }
        self.server.enter(self, _Phase.IDLE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.forget(self)

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # a client that does not read gets no more answers

    def resume_writing(self) -> None:
        if not self.closing:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close once what is written has left; a client that will not read it is cut off
        after another keep-alive period."""
        if not self.closing:
            self.closing = True
            self.server.enter(self, _Phase.CLOSING)
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now, unanswered."""
        self.closing = True
        self.server.forget(self)
        if self.transport is not None:
            self.transport.abort()
        elif self.socket is not None:  # still shaking hands: its end of file fails the handshake
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)

    def expire(self) -> None:
        """The current phase's deadline has passed."""
        if self.phase is _Phase.IDLE:
            self.close()
        elif self.phase in (_Phase.HEAD, _Phase.BODY):
            self.refuse(408, "the request was not received in time")
        else:
            self.abort()

    # -- reading --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        refusal: tuple[int, str] | None = None
        try:
            self._feed(data)
        except _Refusal as exc:
            refusal = (exc.status, str(exc))
        except httptools.HttpParserError as exc:
            cause = exc.__cause__ or exc.__context__  # httptools chains a callback's exception
            refusal = ((cause.status, str(cause)) if isinstance(cause, _Refusal)
                       else (400, "malformed HTTP request"))
        if self.complete:  # requests whole before a bad one still get their answers first
            self._respond_all()
        if refusal:
            self.refuse(*refusal)

    def _feed(self, data: bytes) -> None:
        # httptools keeps a header whole before on_header sees it, so a head is bounded here, as
        # its bytes arrive: never more than what is left of the head's budget at once. (Where a
        # new request begins inside one piece, that piece's share of its head goes uncounted:
        # at most one more budget's worth.)
        limit = self.limits.head
        while data:
            budget = self.head_left if self.in_head else limit
            if len(data) > budget:
                piece, data = data[:budget], data[budget:]
            else:
                piece, data = data, b""
            if self.in_head:
                self.head_left -= len(piece)
            self.parser.feed_data(piece)
            if self.in_head and self.head_left <= 0:
                raise _Refusal(431, f"the request line and headers are larger than {limit} "
                                    "bytes")

    def on_message_begin(self) -> None:
        self.request = _Request()
        self.server.enter(self, _Phase.HEAD)

    def on_url(self, url: bytes) -> None:
        request = self.request
        request.url += url
        if len(request.url) > self.limits.request_line:
            raise _Refusal(414, "the request line is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.request
        limits = self.limits
        if len(request.headers) >= limits.header_fields:
            raise _Refusal(431, "too many request headers")
        if len(name) + len(value) > limits.header_field:
            raise _Refusal(431, "a request header is too long")
        request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self.request
        parser = self.parser
        request.method = parser.get_method().decode("latin-1")
        if parser.should_upgrade():  # an Upgrade (with Connection: upgrade) or CONNECT
            raise _Refusal(400, "CONNECT is not supported" if request.method == "CONNECT"
                           else "protocol upgrades are not supported")
        request.version = parser.get_http_version()
        length, expect_continue = None, False
        for name, value in request.headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)  # llhttp has checked it is a number, and only one
            elif lower == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        if length is not None and length > self.limits.body:
            raise _Refusal(413, f"the request body is larger than {self.limits.body} bytes")
        self.in_head = False
        self.server.enter(self, _Phase.BODY)
        if expect_continue and request.version == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        request = self.request
        request.body_size += len(body)
        if request.body_size > self.limits.body:
            raise _Refusal(413, f"the request body is larger than {self.limits.body} bytes")
        request.body.append(body)

    def on_message_complete(self) -> None:
        self.complete.append((self.request, self.parser.should_keep_alive()))
        self.request = None
        self.in_head = True
        self.head_left = self.limits.head

    # -- answering ------------------------------------------------------------------------

    def _respond_all(self) -> None:
        complete, self.complete = self.complete, []
        for request, keep_alive in complete:
            if self.closing:
                return
            keep_alive = keep_alive and self.server.alive
            self._respond(request, keep_alive)
            if not keep_alive:
                self.close()
                return
        if self.request is None:
            self.server.enter(self, _Phase.IDLE)

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
        server = self.server
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
            result: Iterable[bytes] = server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            server.log.exception("error handling %s %s", escape(environ["REQUEST_METHOD"]),
                                 escape(environ["RAW_URI"]))
            self.refuse(500, "internal server error")
            return
        if not started:
            self.refuse(500, "internal server error")
            return
        server.on_response()
        status, headers = started
        code = int(status[:3])
        body = b"".join(chunks)
        head = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\nDate: ", server.date(), b"\r\n"]
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
        """Answer a request the server itself refuses, in step-ca's error shape, and close."""
        if self.closing:
            return
        body = json_body({"status": status, "message": message})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, _REASONS.get(status, "Error").encode(), self.server.date(), len(body),
               body))
        self.close()


class SharedLoad:
    """How many connections each worker of one server holds, in memory the workers share (an
    anonymous shared mapping the master makes before it forks them). The workers share one
    listening socket and all wake for a new connection; without this, the first to wake could
    take a whole batch of kept-alive clients while another CPU idled (docs/decisions/0044)."""

    SLOTS = 64

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 2 * 4 * self.SLOTS)  # MAP_SHARED: seen after fork
        self._pids = memoryview(self._memory)[:4 * self.SLOTS].cast("i")
        self._counts = memoryview(self._memory)[4 * self.SLOTS:].cast("i")

    def claim(self) -> int | None:
        """A free slot for a worker about to be forked (run in the master), or None when all
        are held: that worker then accepts without looking at the others."""
        for slot, pid in enumerate(self._pids):
            if pid == 0 or not _alive(abs(pid)):
                # negative: reserved by the master, not yet counted among the workers
                self._pids[slot], self._counts[slot] = -os.getpid(), 0
                return slot
        return None

    def seat(self, slot: int) -> Seat:
        """The slot taken by the process calling this (the forked worker)."""
        self._pids[slot], self._counts[slot] = os.getpid(), 0
        return Seat(self, slot)


@dataclass(frozen=True)
class Seat:
    """One worker's slot in a ``SharedLoad``."""

    load: SharedLoad
    slot: int

    def publish(self, count: int) -> None:
        self.load._counts[self.slot] = count

    def fuller_than_another(self, count: int) -> bool:
        pids, counts = self.load._pids, self.load._counts
        return any(pids[slot] > 0 and counts[slot] < count
                   for slot in range(len(pids)) if slot != self.slot)

    def leave(self) -> None:
        """Out of the balance: this worker accepts no more (it stops, or it is exiting)."""
        self.load._pids[self.slot], self.load._counts[self.slot] = 0, 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HTTPServer:
    """A WSGI app served on listening sockets: connections, their phases and deadlines.

    Every connection is always in one phase, waiting on its client (the app runs inline, so
    nothing else is ever in progress when the loop looks); per phase, connections are kept in
    the order they entered it, which is also the order of their deadlines."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limits: Limits, *,
                 loop: asyncio.AbstractEventLoop, log: Any,
                 ssl_context: Callable[[], ssl.SSLContext] | None = None,
                 environ_base: dict[str, Any] | None = None,
                 on_response: Callable[[], None] = lambda: None,
                 seat: Seat | None = None) -> None:
        self.app = app
        self.limits = limits
        self.loop = loop
        self.log = log
        self.ssl_context = ssl_context
        self.environ_base = environ_base or {}
        self.on_response = on_response
        self.alive = True
        self.date = _Date()
        self.count = 0
        self.dropped = 0  # connections dropped to admit others, since the last sweep
        self._phases: dict[_Phase, OrderedDict[_Connection, None]] = {
            phase: OrderedDict() for phase in _Phase}
        self._timeouts = {_Phase.HANDSHAKE: limits.handshake_seconds,
                          _Phase.IDLE: limits.keep_alive_seconds,
                          _Phase.HEAD: limits.header_seconds,
                          _Phase.BODY: limits.body_seconds,
                          _Phase.CLOSING: limits.keep_alive_seconds}
        self._clients: dict[str, dict[_Connection, None]] = {}
        self._listeners: list[socket.socket] = []
        self._accept_warned = 0.0
        self.seat = seat  # this worker's share of the connections, beside the others'
        self._deferred = False

    def listen(self, sockets: Iterable[socket.socket]) -> None:
        """Accept connections on these listening sockets (ours to read, not to close)."""
        for sock in sockets:
            sock.setblocking(False)
            self._listeners.append(sock)
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        # Accepted here rather than by the loop's own server, so that every connection is
        # counted (and can be dropped) from its first moment, TLS handshake included. One per
        # wake-up: every worker wakes for a new connection and the least busy one takes it
        # first, so a batch of keep-alive clients is spread over the workers instead of being
        # taken whole by the first to wake (which left the other CPUs idle); those waiting
        # wake the loop again.
        if self.seat is not None and not self._deferred \
                and self.seat.fuller_than_another(self.count):
            # Another worker holds fewer: leave this one to it, for a moment. Once in a row at
            # most, so a worker that is stuck or gone cannot hold the connections back.
            self._deferred = True
            self.loop.remove_reader(listener.fileno())
            self.loop.call_later(ACCEPT_DEFERRAL_SECONDS, self._resume_accepting, listener)
            return
        self._deferred = False
        try:
            sock, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                self._pause_accepting(listener, exc)
            return  # or the client gave up before we took it (ECONNABORTED, ...)
        conn = _Connection(self, sock, client_host(address))
        if not self.admit(conn):
            sock.close()
            return
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.start()

    def _pause_accepting(self, listener: socket.socket, exc: OSError) -> None:
        """Out of descriptors (or memory): the kernel's backlog holds new clients meanwhile."""
        self.loop.remove_reader(listener.fileno())
        self.loop.call_later(0.1, self._resume_accepting, listener)
        now = self.loop.time()
        if now - self._accept_warned > 10:
            self._accept_warned = now
            self.log.warning("cannot accept connections: %s (lower server.maxConnections or "
                             "raise the file-descriptor limit)", exc.strerror)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if self.alive and listener in self._listeners:
            self.loop.add_reader(listener.fileno(), self._accept, listener)

    # -- accounting -----------------------------------------------------------------------

    def admit(self, conn: _Connection) -> bool:
        """Count a new connection (in the handshake phase), dropping the longest-waiting one
        (of its client address, then of all) where a cap is reached."""
        if not self.alive:
            return False
        peers = self._clients.get(conn.client)
        if peers is not None and len(peers) >= self.limits.connections_per_client:
            self._drop(min(peers, key=_since))
        if self.count >= self.limits.connections:
            waiting = [next(iter(queue)) for queue in self._phases.values() if queue]
            if not waiting:
                return False
            self._drop(min(waiting, key=_since))
        self._clients.setdefault(conn.client, {})[conn] = None
        self.count += 1
        if self.seat is not None:
            self.seat.publish(self.count)
        conn.phase = _Phase.HANDSHAKE
        conn.since = self.loop.time()
        self._phases[_Phase.HANDSHAKE][conn] = None
        return True

    def _drop(self, conn: _Connection) -> None:
        self.dropped += 1
        conn.abort()

    def enter(self, conn: _Connection, phase: _Phase) -> None:
        current = conn.phase
        if current is None or current is phase:
            return
        del self._phases[current][conn]
        conn.phase = phase
        conn.since = self.loop.time()
        self._phases[phase][conn] = None

    def forget(self, conn: _Connection) -> None:
        if conn.phase is None:
            return
        del self._phases[conn.phase][conn]
        conn.phase = None
        peers = self._clients[conn.client]
        del peers[conn]
        if not peers:
            del self._clients[conn.client]
        self.count -= 1
        if self.seat is not None:
            self.seat.publish(self.count)

    def connections(self, phase: str) -> int:
        """How many connections are in ``phase`` (a ``_Phase`` value), for tests and metrics."""
        return len(self._phases[_Phase(phase)])

    # -- time -----------------------------------------------------------------------------

    def sweep(self) -> None:
        """Act on every deadline that has passed; called about once a second."""
        now = self.loop.time()
        for phase, queue in self._phases.items():
            oldest_allowed = now - self._timeouts[phase]
            while queue:
                conn = next(iter(queue))
                if conn.since > oldest_allowed:
                    break
                conn.expire()  # moves it to another phase or forgets it
        if self.dropped:
            self.log.warning("connection limit reached: dropped %d waiting connection(s) to "
                             "admit new ones (limits: %d per process, %d per client address)",
                             self.dropped, self.limits.connections,
                             self.limits.connections_per_client)
            self.dropped = 0

    async def serve(self, tick: Callable[[], None], *, graceful_seconds: float) -> None:
        """Sweep every second (calling ``tick`` first) until ``alive`` turns false, then stop:
        idle connections close at once, one in the middle of a request gets its answer (with
        ``Connection: close``) within ``graceful_seconds``."""
        while self.alive:
            tick()
            self.sweep()
            await asyncio.sleep(1.0)
        if self.seat is not None:
            self.seat.leave()
        for listener in self._listeners:
            self.loop.remove_reader(listener.fileno())
        self._listeners.clear()
        for conn in list(self._phases[_Phase.HANDSHAKE]):
            conn.abort()
        for conn in list(self._phases[_Phase.IDLE]):
            conn.close()
        deadline = self.loop.time() + graceful_seconds
        while self.count and self.loop.time() < deadline:
            tick()
            self.sweep()
            await asyncio.sleep(0.1)
        for queue in self._phases.values():
            for conn in list(queue):
                conn.abort()


def _since(conn: _Connection) -> float:
    return conn.since
