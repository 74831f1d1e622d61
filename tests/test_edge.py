"""Hostile clients against the real step-ca (gunicorn, stepca's worker, TLS, one worker process):
oversized heads, slow and silent connections by the thousand, protocol upgrades, forged log
lines, and the plain-HTTP listener under the same attacks. Each test reproduces an attack that
once broke the CA."""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stepca.testing.http import (
    RunningCA,
    closed_by_server,
    exchange,
    read_response,
    running_ca,
    sign_body,
)
from stepca.testing.process import free_port, scripts_dir

pytestmark = pytest.mark.e2e

HEAD_LIMIT = 16 * 1024
HEADER_SECONDS = 4


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Iterator[RunningCA]:
    with running_ca(tmp_path_factory.mktemp("edge"), maxHeaderBytes=HEAD_LIMIT,
                    headerTimeout=HEADER_SECONDS) as running:
        yield running


def memory_kib(pid: int, field: str = "VmHWM") -> int:
    """A process's resident memory from /proc (VmHWM: its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def sign_request(ca: RunningCA, subject: str, extra_headers: bytes = b"") -> bytes:
    body = sign_body(ca, subject)
    return (b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra_headers + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


# -- the head is bounded as it arrives ------------------------------------------------------------

def flood_one_header(ca: RunningCA, offered: int) -> tuple[int | None, int]:
    """Send a header of ``offered`` bytes while reading: (the status the CA answered, bytes it
    had been sent by then)."""
    chunk = b"a" * 65536
    with ca.connect(timeout=20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, answer = 0, b""
        sock.setblocking(False)
        while sent < offered and not answer:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:  # TLS 1.3 session tickets make the socket readable too
                try:
                    answer = sock.recv(65536)
                    if not answer:
                        break
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except OSError:
                    break
            elif writable:
                try:
                    sent += sock.send(chunk)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    break
        sock.setblocking(True)
        try:
            status, _, body, _ = read_response(sock, answer)
        except (OSError, ssl.SSLError):
            return None, sent
        assert json.loads(body)["status"] == status
        assert closed_by_server(sock)
        return status, sent


def test_a_huge_header_is_refused_as_it_arrives_and_memory_stays_flat(ca):
    # Once: one header of 190 MB was read whole before the 431; six such connections took the
    # worker to 650 MB and made /sign take 13 s.
    pid = ca.worker_pid()
    assert exchange(ca, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
    before = memory_kib(pid)
    results: list[tuple[int | None, int]] = []
    attackers = [threading.Thread(target=lambda: results.append(
        flood_one_header(ca, 200 * 1024 * 1024))) for _ in range(6)]
    for attacker in attackers:
        attacker.start()
    status, _, answer = exchange(ca, sign_request(ca, "during.example.com"))
    for attacker in attackers:
        attacker.join(60)
    assert status == 201, answer  # the CA kept serving others meanwhile
    assert [status for status, _ in results] == [431] * 6
    # refused after the limit, not after the 200 MB offered (the rest is socket buffers)
    assert all(sent < 16 * 1024 * 1024 for _, sent in results), results
    assert memory_kib(pid) - before < 20 * 1024, "the worker's peak memory grew"


def padded_head(total: int) -> bytes:
    """A GET /health whose request line and headers are exactly ``total`` bytes, in headers
    of at most 8,000 bytes each (under the per-header limit)."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n"
    end = b"\r\n"
    index = 0
    while len(head) + len(end) < total:
        room = total - len(head) - len(end) - len(b"X-Pad-00: \r\n")
        value = b"v" * max(0, min(8000, room))
        if room - len(value) < len(b"X-Pad-00: \r\n") and room - len(value) > 0:
            value = value[:-len(b"X-Pad-00: \r\n")]  # leave room for one last, shorter header
        head += b"X-Pad-%02d: %s\r\n" % (index, value)
        index += 1
    request = head + end
    assert len(request) == total
    return request


def test_the_head_limit_counts_every_byte_of_line_and_headers(ca):
    status, _, _ = exchange(ca, padded_head(HEAD_LIMIT))
    assert status == 200
    status, headers, body = exchange(ca, padded_head(HEAD_LIMIT + 1))
    assert status == 431 and headers["connection"] == "close"
    assert json.loads(body) == {"status": 431, "message": "the request line and headers are "
                                                          f"larger than {HEAD_LIMIT} bytes"}


def test_a_head_sent_a_byte_at_a_time_is_bounded_too(ca):
    with ca.connect(timeout=20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(HEAD_LIMIT // 1024 + 1):
            sock.sendall(b"a" * 1024)
        status, _, body, _ = read_response(sock)
    assert status == 431 and "larger than" in json.loads(body)["message"]


# -- deadlines ------------------------------------------------------------------------------------

def test_a_head_that_trickles_in_gets_408_at_the_header_deadline(ca):
    # A byte every 0.3 s keeps a connection busy forever unless the head has its own deadline
    # ("headerTimeout": 4 here), however steadily the bytes come.
    with ca.connect(timeout=20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.3)
        while time.monotonic() - started < 3 * HEADER_SECONDS and not answer:
            try:
                sock.sendall(b"a")
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except (ConnectionError, ssl.SSLError):
                break
        sock.settimeout(10)
        status, _, body, _ = read_response(sock, answer)
    assert status == 408 and json.loads(body)["status"] == 408
    assert HEADER_SECONDS - 0.5 < time.monotonic() - started < 2 * HEADER_SECONDS


# -- one request, one response --------------------------------------------------------------------

@pytest.mark.parametrize("headers, message", [
    (b"Connection: Upgrade\r\nUpgrade: h2c\r\n", "protocol upgrades are not supported"),
    (b"Connection: keep-alive, upgrade\r\nUpgrade: websocket\r\n",
     "protocol upgrades are not supported"),
], ids=["h2c", "websocket"])
def test_an_upgrade_is_refused_before_the_app_runs(ca, headers, message):
    # Once: the app ran (and spent the token) and a 400 was appended after its answer.
    request = sign_request(ca, "upgrade.example.com", headers)
    with ca.connect() as sock:
        sock.sendall(request)
        status, response_headers, body, rest = read_response(sock)
        assert (status, json.loads(body)["message"]) == (400, message)
        assert response_headers["connection"] == "close" and rest == b""
        assert closed_by_server(sock)
    without = request.replace(headers, b"")
    status, _, body = exchange(ca, without)
    assert status == 201, body  # the same token: the refused request did not spend it


def test_connect_is_refused_before_the_app_runs(ca):
    with ca.connect() as sock:
        sock.sendall(b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"
                     b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body, rest = read_response(sock)
        assert (status, json.loads(body)["message"]) == (400, "CONNECT is not supported")
        assert rest == b"" and closed_by_server(sock)
    assert "CONNECT" not in ca.process.logs()  # no access line: the app never saw it


# -- many slow clients ----------------------------------------------------------------------------

class SlowClients:
    """Connections that complete TLS and then send a header byte every ``interval`` seconds,
    forever, from the given loopback addresses; plus silent ones that never start TLS."""

    def __init__(self, ca: RunningCA, sources: list[str], per_source: int, *,
                 silent: int = 0, interval: float = 2.0) -> None:
        self.ca, self.sources, self.per_source = ca, sources, per_source
        self.silent, self.interval = silent, interval
        self.open: dict[str, int] = {source: 0 for source in sources}
        self.closed: dict[str, int] = {source: 0 for source in sources}
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))

    async def _one(self, source: str, context: ssl.SSLContext, started: asyncio.Queue) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.ca.port, ssl=context, server_hostname="127.0.0.1",
                local_addr=(source, 0), ssl_handshake_timeout=30)
        except OSError:
            self.closed[source] += 1
            await started.put(None)
            return
        self.open[source] += 1
        writer.write(b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await started.put(None)
        try:
            while not self.stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(1024), self.interval)
                except TimeoutError:
                    writer.write(b"a")
                    continue
                if not data:
                    break
        except (OSError, ssl.SSLError):
            pass
        self.open[source] -= 1
        self.closed[source] += 1
        writer.transport.abort()

    async def _run(self) -> None:
        context = self.ca.context()
        started: asyncio.Queue = asyncio.Queue()
        tasks = []
        for source in self.sources:
            for _ in range(self.per_source):
                tasks.append(asyncio.ensure_future(self._one(source, context, started)))
                await asyncio.sleep(0)
        for _ in tasks:
            await started.get()
        silent = []  # last, as the CA drops them when their handshake deadline passes
        for _ in range(self.silent):
            sock = socket.socket()
            sock.setblocking(False)
            await self.loop.sock_connect(sock, ("127.0.0.1", self.ca.port))
            silent.append(sock)
        self.ready.set()
        while not self.stop.is_set():
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in silent:
            sock.close()

    def __enter__(self) -> SlowClients:
        self.thread.start()
        assert self.ready.wait(120), "the slow clients could not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        self.loop.close()


def raise_open_files() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 10000 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (10000, hard))


def established(port: int) -> int:
    """Server-side established connections of ``port`` (IPv4, from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state = line.split()[1:4]
        if int(local.split(":")[1], 16) == port and state == "01":
            count += 1
    return count


def test_a_client_that_behaves_is_served_while_thousands_of_slow_ones_are_held(tmp_path):
    # Once: ~2,000 connections sending a byte every few seconds filled every slot, and other
    # clients were refused for the whole request timeout.
    raise_open_files()
    with running_ca(tmp_path, headerTimeout=60) as ca:
        sources = [f"127.0.0.{n}" for n in range(2, 10)]
        with SlowClients(ca, sources, per_source=300, silent=200) as slow:
            assert sum(slow.open.values()) == 2400  # all held: the CA has room for them
            assert established(ca.port) >= 2600
            for attempt in range(3):  # new connections each time, the slow ones still there
                status, _, body = exchange(ca, sign_request(ca, f"good{attempt}.example.com"))
                assert status == 201, body
            assert sum(slow.open.values()) == 2400
        assert memory_kib(ca.worker_pid(), "VmHWM") < 600 * 1024


def test_when_full_the_longest_waiting_connections_make_room(tmp_path):
    raise_open_files()
    with running_ca(tmp_path, headerTimeout=60, maxConnections=100,
                    maxConnectionsPerClient=40) as ca:
        # Three addresses fill 120 > 100 places: the oldest are dropped as the newest arrive.
        with SlowClients(ca, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], per_source=40) as slow:
            time.sleep(1.5)  # the clients notice their closed connections
            assert sum(slow.open.values()) <= 100
            # a client that behaves gets in by dropping the slowest, and is served
            status, _, body = exchange(ca, sign_request(ca, "room.example.com"))
            assert status == 201, body
        # One address opening 60 keeps at most 40: its own oldest make room.
        with SlowClients(ca, ["127.0.0.5"], per_source=60) as greedy:
            time.sleep(1.5)
            assert greedy.open["127.0.0.5"] <= 40 and greedy.closed["127.0.0.5"] >= 20
            status, _, body = exchange(ca, sign_request(ca, "other.example.com"))
            assert status == 201, body
        # Silent connections (no TLS handshake at all) count, and make room the same way.
        with SlowClients(ca, [], per_source=0, silent=150):
            status, _, body = exchange(ca, sign_request(ca, "silent.example.com"))
            assert status == 201, body
        assert re.search(r"WARNING stepca\.http: connection limit reached: dropped \d+ waiting "
                         r"connection\(s\) to admit new ones \(limits: 100 per process, 40 per "
                         r"client address\)", ca.process.logs())


# -- gunicorn settings the worker does not carry out ----------------------------------------------

@pytest.mark.parametrize("flags, setting", [
    (["--access-logfile", "-"], "accesslog"),
    (["--statsd-host", "127.0.0.1:8125"], "statsd_host"),
])
def test_gunicorn_settings_the_worker_ignores_are_refused_at_start(flags, setting):
    result = subprocess.run(
        [str(scripts_dir() / "gunicorn"), "-k", "stepca.worker.EventLoopWorker", "-b",
         f"127.0.0.1:{free_port()}", *flags, "stepca.testing.http:hello"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert (f"Error: gunicorn setting '{setting}' is not supported by stepca's worker"
            in result.stderr)


def test_the_worker_runs_under_plain_gunicorn():
    port = free_port()
    server = subprocess.Popen(
        [str(scripts_dir() / "gunicorn"), "-k", "stepca.worker.EventLoopWorker", "-b",
         f"127.0.0.1:{port}", "stepca.testing.http:hello"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    status, _, body, _ = read_response(sock)
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert (status, body) == (200, b"hello")
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert b"Using worker: stepca.worker.EventLoopWorker" in output


# -- logs -----------------------------------------------------------------------------------------

FORGED = "2026-12-04 12:00:00,000 INFO stepca.access: 10.0.0.1 \"GET /forged HTTP/1.1\" 200"
LOG_LINE = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: |\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] "
    r"\[\d+\] \[[A-Z]+\] |step-ca \d|  \| )")


def test_nothing_a_client_sends_can_forge_a_log_line(ca):
    # Once: "%0A" in a path was decoded and written raw, so a client could add log lines.
    encoded = FORGED.replace(" ", "%20").replace('"', "%22")
    for target in (f"/health%0A{encoded}", f"/root/x%0D%0A{encoded}",
                   f"/health?x=%0A{encoded}", f"/1.0/crl%E2%80%A8{encoded}"):
        exchange(ca, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # a refused request whose error message quotes what the client sent
    body = json.dumps({"serial": f"1\n{FORGED}", "ott": "x"}).encode()
    exchange(ca, b"POST /1.0/revoke HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
             % (len(body), body))
    time.sleep(0.3)
    logs = ca.process.logs()
    assert "GET /forged" in logs  # it was logged...
    for line in logs.splitlines():
        assert LOG_LINE.match(line), f"a log line that is not one of ours: {line!r}"
        assert not line.startswith(FORGED[:20])  # ...never as a line of its own
    assert "/health%0A2026-12-04" in logs  # the request target as sent


# -- the plain-HTTP listener (insecureAddress) ----------------------------------------------------

def pid_listening_on(port: int, candidates: list[int]) -> int:
    """Which of ``candidates`` holds the listening socket of ``port``."""
    inode = next(line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if int(line.split()[1].split(":")[1], 16) == port and line.split()[3] == "0A")
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if fd.readlink().name == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no process listens on {port}")


def threads_of(pid: int) -> int:
    return memory_kib(pid, "Threads")


def test_the_plain_http_listener_is_protected_like_the_https_port(tmp_path):
    # Once: wsgiref with a thread per connection and no timeouts; 3,000 half-sent requests left
    # 3,000 threads.
    raise_open_files()
    insecure = free_port()
    with running_ca(tmp_path, headerTimeout=3, ca_json={
            "insecureAddress": f"127.0.0.1:{insecure}", "crl": {"enabled": True},
            "ocsp": {"enabled": True}}) as ca:
        _master, *children = ca.process.pids()
        listener = pid_listening_on(insecure, children)
        half_sent = []
        for n in range(3000):  # from three addresses, each under its per-client cap (1024)
            sock = socket.create_connection(("127.0.0.1", insecure), timeout=10,
                                            source_address=(f"127.0.0.{2 + n % 3}", 0))
            sock.sendall(b"GET /crl HTTP/1.1\r\nHost: x\r\nX-Half: ")
            half_sent.append(sock)
        try:
            assert established(insecure) >= 3000 and threads_of(listener) <= 2
            # keep-alive: two requests on one connection
            with socket.create_connection(("127.0.0.1", insecure), timeout=10) as sock:
                for _ in range(2):
                    sock.sendall(b"GET /crl HTTP/1.1\r\nHost: x\r\n\r\n")
                    status, headers, body, _ = read_response(sock)
                    assert status == 200 and headers["content-type"] == "application/pkix-crl"
                    assert "connection" not in headers
            # the half-sent ones get 408 at the header deadline
            late = half_sent[0]
            late.settimeout(10)
            status, _, body, _ = read_response(late)
            assert status == 408 and json.loads(body)["status"] == 408
        finally:
            for sock in half_sent:
                sock.close()
        # the same head limit
        with socket.create_connection(("127.0.0.1", insecure), timeout=10) as sock:
            sock.sendall(b"GET /crl HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
            assert read_response(sock)[0] == 431
        assert re.search(r'INFO stepca\.access: 127\.0\.0\.1 "GET /crl HTTP/1\.1" 200 \d+ ',
                         ca.process.logs())
