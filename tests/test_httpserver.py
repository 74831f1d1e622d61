"""stepca.httpserver in-process, over real sockets (plain HTTP): which connection makes room when
the server is full, how workers sharing a listener split new connections, and the log lines
that no client can forge."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stepca.httpserver import HTTPServer, Limits, SharedLoad
from stepca.logs import LineFormatter, escape
from stepca.testing.http import closed_by_server, hello, read_response, serving


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def wait_for(server, phase: str, count: int) -> None:
    deadline = time.monotonic() + 5
    while server.call(lambda: server.server.connections(phase)) != count:
        assert time.monotonic() < deadline, f"never {count} connection(s) in {phase}"
        time.sleep(0.01)


def test_when_full_the_connection_waiting_longest_is_dropped():
    with serving(limits=Limits(connections=3, connections_per_client=3)) as server:
        idle = connect(server.port)  # answered, then idle the longest
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[0] == 200
        slow = connect(server.port)  # half a request, for less long
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        wait_for(server, "head", 1)
        fresh = connect(server.port)  # connected last
        wait_for(server, "idle", 2)
        newcomer = connect(server.port)
        newcomer.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(newcomer)[0] == 200
        assert closed_by_server(idle)
        slow.sendall(b"\r\n")  # the others are still being served
        assert read_response(slow)[0] == 200
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(fresh)[0] == 200
        assert server.call(lambda: server.server.count) == 3
        for sock in (idle, slow, fresh, newcomer):
            sock.close()


def test_a_client_address_over_its_cap_makes_room_from_its_own_connections():
    with serving(limits=Limits(connections=100, connections_per_client=2)) as server:
        first, second = connect(server.port, "127.0.0.2"), connect(server.port, "127.0.0.2")
        other = connect(server.port, "127.0.0.3")
        wait_for(server, "idle", 3)
        third = connect(server.port, "127.0.0.2")
        third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(third)[0] == 200
        assert closed_by_server(first)
        for sock in (second, other):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == 200
        for sock in (first, second, third, other):
            sock.close()


def test_deadlines_follow_the_phase():
    limits = Limits(keep_alive_seconds=1, header_seconds=1, body_seconds=1,
                    handshake_seconds=1)
    with serving(limits=limits) as server:
        idle = connect(server.port)
        head = connect(server.port)
        head.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        body = connect(server.port)
        body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        for sock in (idle, head, body):
            sock.settimeout(5)
        assert closed_by_server(idle)  # closed without an answer
        assert read_response(head)[0] == 408
        assert read_response(body)[0] == 408
        assert server.call(lambda: server.server.count) == 0
        for sock in (idle, head, body):
            sock.close()


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("stepca.test", logging.INFO, __file__, 1, message, args,
                             exc_info)  # type: ignore[arg-type]


def test_control_characters_are_escaped_in_every_message():
    formatter = LineFormatter("%(levelname)s %(name)s: %(message)s")
    text = formatter.format(record("refused %s", "a\nb\rc\x00d\x1be\x85f\u2028g\x7fh"))
    assert text == "INFO stepca.test: refused a\\x0ab\\x0dc\\x00d\\x1be\\x85f\\u2028g\\x7fh"
    assert escape("plain text, ünïcode and tabs\tstay") == "plain text, ünïcode and tabs\\x09stay"
    assert escape(42) == "42"


def test_a_traceback_cannot_start_a_line_of_its_own():
    formatter = LineFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("bad serial '1\n2026-12-04 12:00:00,000 INFO stepca.access: forged'")
    except ValueError as exc:
        text = formatter.format(record("unexpected", exc_info=(type(exc), exc,
                                                               exc.__traceback__)))
    first, *rest = text.splitlines()
    assert first == "INFO stepca.test: unexpected"
    assert rest and all(line.startswith("  | ") for line in rest)
    assert "  | 2026-12-04 12:00:00,000 INFO stepca.access: forged'" in rest


@contextmanager
def waiting_clients(count: int) -> Iterator[tuple[Any, socket.socket]]:
    """An event loop (not running) and a listener with ``count`` connections waiting on it."""
    import uvloop

    loop = uvloop.new_event_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()[:2], timeout=5)
               for _ in range(count)]
    try:
        yield loop, listener
    finally:
        for sock in clients:
            sock.close()
        listener.close()
        loop.run_until_complete(asyncio.sleep(0))  # the accepted connections' tasks end
        loop.close()


def server_on(loop: Any, seat: Any = None) -> HTTPServer:
    return HTTPServer(hello, Limits(), loop=loop, log=logging.getLogger("stepca.http"),
                      seat=seat)


def test_one_connection_is_taken_per_wakeup_so_that_other_workers_get_the_rest():
    # Workers share the listener: one that took every waiting client at once would serve a
    # batch of keep-alive clients alone while the other CPUs idle.
    with waiting_clients(3) as (loop, listener):
        server = server_on(loop)
        server._accept(listener)
        assert server.count == 1
        listener.setblocking(True)
        listener.settimeout(5)
        for _ in range(2):  # the other two are still waiting for whichever worker wakes next
            listener.accept()[0].close()


def test_a_worker_holding_more_connections_leaves_the_next_to_one_holding_fewer():
    load = SharedLoad()
    with waiting_clients(4) as (loop, listener):
        busy, idle = (server_on(loop, load.seat(load.claim())) for _ in range(2))
        busy._accept(listener)  # both hold none: it takes one
        assert (busy.count, idle.count) == (1, 0)
        busy._accept(listener)  # it holds more than the other: it leaves this one
        assert (busy.count, idle.count) == (1, 0)
        idle._accept(listener)
        idle._accept(listener)  # as many as the other: it takes it
        assert (busy.count, idle.count) == (1, 2)
        idle._accept(listener)  # now it holds more
        assert idle.count == 2
        idle._accept(listener)  # but it waits once in a row at most: a worker that is stuck
        assert idle.count == 3  # or gone cannot hold new connections back
        busy.seat.leave()  # a worker that stops accepting counts no more
        assert not idle.seat.fuller_than_another(idle.count)
