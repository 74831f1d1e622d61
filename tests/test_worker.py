"""step-ca's own gunicorn worker (stepca.worker), driven over real sockets against a real step-ca
with a single worker process, so that anything blocking the worker would show."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
from stepca.testing import make_csr, make_token
from stepca.testing.http import (
    RunningCA,
    closed_by_server,
    exchange,
    read_response,
    running_ca,
    server_side_state,
    sign_body,
)

MAX_BODY = 4096


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Iterator[RunningCA]:
    with running_ca(tmp_path_factory.mktemp("worker"), maxRequestBytes=MAX_BODY) as running:
        yield running


def test_a_silent_or_stalled_client_does_not_hold_the_worker(ca):
    silent = socket.create_connection(("127.0.0.1", ca.port))  # no TLS handshake at all
    stalled = ca.connect()
    stalled.sendall(b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        started = time.monotonic()
        status, _, body = exchange(ca, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert time.monotonic() - started < 2  # answered at once, not after a read timeout
    finally:
        silent.close()
        stalled.close()


def test_an_oversized_body_is_refused_before_it_is_sent(ca):
    with ca.connect() as sock:
        sock.sendall(b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n")
        status, headers, body, _ = read_response(sock)
        assert status == 413
        assert json.loads(body) == {"status": 413, "message": f"the request body is larger "
                                                              f"than {MAX_BODY} bytes"}
        assert headers["connection"] == "close" and closed_by_server(sock)


def test_an_oversized_chunked_body_is_refused(ca):
    chunk = b"x" * 1024
    request = (b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + (b"400\r\n" + chunk + b"\r\n") * 5 + b"0\r\n\r\n")
    status, _, body = exchange(ca, request)
    assert status == 413 and json.loads(body)["status"] == 413


def test_a_chunked_body_reaches_the_ca(ca):
    body = sign_body(ca, "chunked.example.com")
    middle = len(body) // 2
    request = (b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (middle, body[:middle],
                                                       len(body) - middle, body[middle:]))
    status, _, answer = exchange(ca, request)
    assert status == 201, answer
    assert json.loads(answer)["crt"].startswith("-----BEGIN CERTIFICATE-----")


def test_expect_100_continue_gets_an_interim_answer(ca):
    body = sign_body(ca, "continue.example.com")
    with ca.connect() as sock:
        sock.sendall(b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        status, _, _, rest = read_response(sock)
        assert status == 100  # before any byte of the body was sent
        sock.sendall(body)
        status, _, answer, _ = read_response(sock, rest)
        assert status == 201, answer


@pytest.mark.parametrize("request_bytes, status", [
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(101)) + b"\r\n",
     431),
], ids=["garbage", "two-lengths", "length-and-chunked", "long-url", "long-header",
        "many-headers"])
def test_malformed_or_oversized_requests_get_a_json_error_and_a_closed_connection(
        ca, request_bytes, status):
    with ca.connect() as sock:
        sock.sendall(request_bytes)
        got, headers, body, _ = read_response(sock)
        assert got == status
        assert json.loads(body)["status"] == status
        # written as every other error body, the way step-ca writes its own
        assert body.startswith(b'{"status":%d,"message":"' % status) and body.endswith(b'"}\n')
        assert headers["connection"] == "close" and closed_by_server(sock)


def test_pipelined_requests_are_answered_in_order(ca):
    with ca.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"BROKEN\r\n\r\n")
        first, _, body1, rest = read_response(sock)
        second, _, _, rest = read_response(sock, rest, no_body=True)
        third, _, body3, rest = read_response(sock, rest)
        fourth, _, _, rest = read_response(sock, rest)
        fifth, headers, _, _ = read_response(sock, rest)
    assert (first, json.loads(body1)) == (200, {"status": "ok"})
    assert second == 404  # and no body, whatever its Content-Length: the next answer parses
    assert third == 200 and "version" in json.loads(body3)
    assert fourth == 404
    assert fifth == 400 and headers["connection"] == "close"


def test_keep_alive_head_and_connection_close(ca):
    with ca.connect() as sock:
        sock.sendall(b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")  # 404 has a body for GET
        status, headers, _, rest = read_response(sock, no_body=True)
        assert status == 404 and int(headers["content-length"]) > 0 and rest == b""
        assert "date" in headers
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection
        status, headers, body, _ = read_response(sock)
        assert status == 200 and len(body) == int(headers["content-length"])
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _, _ = read_response(sock)
        assert status == 200 and headers["connection"] == "close" and closed_by_server(sock)
    with ca.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        status, _, _, _ = read_response(sock)
        assert status == 200 and closed_by_server(sock)


def test_an_idle_kept_alive_connection_is_closed(ca):
    with ca.connect(timeout=20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        assert closed_by_server(sock)
        assert 1.5 < time.monotonic() - started < 5  # "keepAlive": 2


def test_a_request_that_does_not_arrive_in_time_gets_408(ca):
    with ca.connect(timeout=20) as sock:
        sock.sendall(b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        status, headers, body, _ = read_response(sock)
        assert 1.5 < time.monotonic() - started < 5  # "requestTimeout": 2
        assert status == 408 and json.loads(body)["status"] == 408
        assert headers["connection"] == "close" and closed_by_server(sock)


def test_underscore_headers_cannot_pose_as_dashed_ones(ca):
    # "Content_Length" must not reach the app as CONTENT_LENGTH, nor "X_Forwarded_For"
    # as HTTP_X_FORWARDED_FOR: both are dropped.
    status, _, body = exchange(ca, b"GET /health HTTP/1.1\r\nHost: x\r\nContent_Length: 9\r\n"
                                   b"X_Forwarded_For: 10.0.0.1\r\n\r\n")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    log = ca.process.logs()
    assert "10.0.0.1" not in log


@pytest.mark.parametrize("threads, worker", [(1, "StepCAWorker"), (2, "gthread")])
def test_both_workers_pass_the_client_certificate_to_renew(tmp_path, threads, worker):
    # threads > 1 selects gunicorn's threaded worker (for plugins that block on the network);
    # either way /renew authenticates by the TLS client certificate.
    from stepca.x509util import encrypt_private_key

    with running_ca(tmp_path, threads=threads) as ca:
        csr, key = make_csr("renew.example.com")
        token = make_token(ca.pki, "renew.example.com",
                           audience=f"https://127.0.0.1:{ca.port}/1.0/sign")
        request = json.dumps({"csr": csr, "ott": token}).encode()
        status, _, body = exchange(ca, b"POST /1.0/sign HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: %d\r\n\r\n%s" % (len(request), request))
        assert status == 201, body
        issued = json.loads(body)
        (tmp_path / "leaf.crt").write_text(issued["crt"] + issued["ca"])
        (tmp_path / "leaf.key").write_bytes(encrypt_private_key(key, None))
        context = ca.context()
        context.load_cert_chain(tmp_path / "leaf.crt", tmp_path / "leaf.key")
        raw = socket.create_connection(("127.0.0.1", ca.port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"POST /1.0/renew HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            status, _, answer, _ = read_response(sock)
        assert status == 201, answer
        assert json.loads(answer)["crt"] != issued["crt"]
        logs = ca.process.logs()
        assert f"Using worker: {worker}" in logs
        for path in ("sign", "renew"):  # the access log, under either worker
            assert re.search(r"\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO stepca\.access: 127\.0\.0\.1 "
                             rf'"POST /1\.0/{path} HTTP/1\.1" 201 \d+ \d+ms pid=\d+ '
                             r"request_id=[0-9a-f]{20} [^\n]*provisioner=admin[^\n]*\n", logs), logs


def test_a_client_that_never_reads_is_cut_off(ca):
    # Pipelined requests whose answers the client never reads fill both socket buffers; the
    # worker stops reading, closes when the connection idles and, as that close cannot drain,
    # lets the socket go. Without that the worker would hold it for as long as the client
    # keeps its window shut.
    raw = socket.create_connection(("127.0.0.1", ca.port), timeout=20)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with ca.context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        client_port = sock.getsockname()[1]
        sock.setblocking(False)
        request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" * 100
        with contextlib.suppress(BlockingIOError, ssl.SSLWantWriteError):
            for _ in range(400):  # ~1.3 MB of answers, far beyond the buffers
                sock.send(request)
        assert server_side_state(ca.port, client_port) == "ESTABLISHED"
        deadline = time.monotonic() + 15
        while (time.monotonic() < deadline
               and server_side_state(ca.port, client_port) == "ESTABLISHED"):
            time.sleep(0.5)
        # FIN_WAIT1 (the kernel still holds the unsent answers) or gone: no longer the worker's
        assert server_side_state(ca.port, client_port) != "ESTABLISHED"
