"""Real HTTP against stepca's edge: a ``step-ca`` process, or ``stepca.httpserver`` alone on a
real socket in a background thread, and raw-socket client helpers that see exactly what the
server sends."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["RunningCA", "ServingThread", "another_instance", "call_wsgi", "closed_by_server",
           "exchange", "free_dual_stack_port", "read_response", "running_ca",
           "server_side_state", "serving", "sign_body"]


class RunningCA:
    """A ``step-ca`` process with a fresh PKI, and how to reach it."""

    def __init__(self, process: Any, pki: Any, root: Path) -> None:
        self.process, self.pki, self.root = process, pki, root

    @property
    def port(self) -> int:
        return int(self.process.port)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root))

    def connect(self, timeout: float = 10, source: str | None = None,
                host: str = "127.0.0.1") -> ssl.SSLSocket:
        raw = socket.create_connection((host, self.port), timeout=timeout,
                                       source_address=(source, 0) if source else None)
        return self.context().wrap_socket(raw, server_hostname="127.0.0.1")

    def reload(self, config: dict[str, Any] | None, *, expect: str, settle: bool = True,
               timeout: float = 60) -> None:
        """Write ``config`` as its ca.json (None: it is written already), send SIGHUP to the
        master and wait for the log line ``expect`` and, if ``settle``, for new children in
        place of the old ones."""
        import os
        import signal

        from stepca.testing.process import wait_for

        if config is not None:
            self.process.ca_json.write_text(json.dumps(config, indent="\t"))
        children = set(self.process.pids()[1:])
        before = self.process.logs().count(expect)
        os.kill(self.process.proc.pid, signal.SIGHUP)
        wait_for(lambda: self.process.logs().count(expect) > before,
                 f"the log line {expect!r}", timeout=timeout)
        if settle:
            wait_for(lambda: not children & set(self.process.pids())
                     and len(self.process.pids()) == len(children) + 1, "new children",
                     timeout=timeout)

    def worker_pid(self) -> int:
        """The one worker's process id (the CA runs with ``"workers": 1``)."""
        _master, *workers = self.process.pids()
        if len(workers) != 1:
            raise AssertionError(f"expected one worker, found {workers}")
        return workers[0]


@contextmanager
def running_ca(tmp: Path, *, ca_json: dict[str, Any] | None = None, host: str = "127.0.0.1",
               **server: Any) -> Iterator[RunningCA]:
    """A one-worker step-ca on ``host`` (``""``: every address, as ``":port"``) and a free port;
    ``server`` overrides ca.json's ``server`` block (keep-alive and request timeouts default to
    2 s here), ``ca_json`` its top level."""
    from stepca.testing import make_pki
    from stepca.testing.process import StepCAProcess, free_port

    pki = make_pki(tmp / "pki")
    port = free_port() if host else free_dual_stack_port()
    config = pki.config(tmp / "run", address=f"{host}:{port}",
                        server={"workers": 1, "keepAlive": 2, "requestTimeout": 2, **server},
                        **(ca_json or {}))
    password = tmp / "password"
    password.write_bytes(pki.password)
    root = pki.steppath / "certs" / "root_ca.crt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    with StepCAProcess(config, password_file=password, root=root, port=port,
                       env=env) as process:
        yield RunningCA(process, pki, root)


@contextmanager
def another_instance(ca: RunningCA, tmp: Path) -> Iterator[RunningCA]:
    """A second ``step-ca`` of ``ca``'s authority, as instances behind a load balancer are: the
    same PKI, intermediate key, password and database, from a copy of its ca.json (written
    under ``tmp``) whose only change is the listening address, a free port on 127.0.0.1 (and
    ``insecureAddress``, when set, another). Only a store shared between processes
    (PostgreSQL) makes the two act as one CA."""
    from stepca.testing.process import StepCAProcess, free_port

    first = ca.process
    config = json.loads(first.ca_json.read_text())
    port = free_port()
    config["address"] = f"127.0.0.1:{port}"
    if config.get("insecureAddress"):
        config["insecureAddress"] = f"127.0.0.1:{free_port()}"
    path = tmp / "config" / "ca.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent="\t"))
    with StepCAProcess(path, password_file=first.password_file, root=ca.root, port=port,
                       env=first.env, bin_dir=first.bin_dir,
                       extra_args=first.extra_args) as process:
        yield RunningCA(process, ca.pki, ca.root)


def free_dual_stack_port() -> int:
    """A port free on every IPv4 and IPv6 address, where ``":port"`` will listen."""
    from stepca.testing.process import free_port

    return free_port(dual_stack=True)


def read_response(sock: socket.socket, buffer: bytes = b"", *,
                  no_body: bool = False) -> tuple[int, dict[str, str], bytes, bytes]:
    """(status, headers, body, what was read beyond this response); a HEAD answer has no
    body whatever its Content-Length says."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {buffer!r}")
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip()
               for k, v in (line.split(":", 1) for line in lines[1:])}
    length = 0 if no_body else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length], rest[length:]


# Every answer echoes the request's id, random unless the client sent one: left out of the
# headers of ``exchange`` and ``call_wsgi``, which tests compare with step-ca 0.19's answers
# (0.19 sends none); ``read_response`` keeps it.
REQUEST_ID = "x-request-id"


def exchange(ca: RunningCA, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: (status, headers but ``X-Request-Id``, body)."""
    with ca.connect() as sock:
        sock.sendall(request)
        status, headers, body, _ = read_response(sock)
        headers.pop(REQUEST_ID, None)
        return status, headers, body


def call_wsgi(app: Callable[..., Iterable[bytes]], method: str, path: str, *,
              raw_uri: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to a WSGI app in-process: (status, headers but ``X-Request-Id``, body).
    Unlike Falcon's test
    client it does not run wsgiref's validator, which refuses an answer without Content-Type
    (chi's 405 has none). ``raw_uri`` is the request target as sent (default: ``path``)."""
    from falcon import testing

    environ = testing.create_environ(method=method, path=path)
    environ["RAW_URI"] = raw_uri or path
    started: list[Any] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: started.append(
        (status, headers))))
    status, headers = started[0]
    return (int(status.split()[0]),
            {k.lower(): v for k, v in headers if k.lower() != REQUEST_ID}, body)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


def sign_body(ca: RunningCA, subject: str) -> bytes:
    """A ``/sign`` request body with a fresh key, CSR and token for ``subject``."""
    from stepca.testing import make_csr, make_token

    csr, _ = make_csr(subject)
    token = make_token(ca.pki, subject, audience=f"https://127.0.0.1:{ca.port}/1.0/sign")
    return json.dumps({"csr": csr, "ott": token}).encode()


_TCP_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "07": "CLOSE",
               "08": "CLOSE_WAIT", "0B": "CLOSING"}


def server_side_state(server_port: int, client_port: int) -> str | None:
    """The state of the server's end of one IPv4 loopback connection, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if (int(local.split(":")[1], 16) == server_port
                and int(remote.split(":")[1], 16) == client_port):
            return _TCP_STATES.get(state, state)
    return None


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
