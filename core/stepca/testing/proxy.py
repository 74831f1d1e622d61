"""A forward proxy on 127.0.0.1 for tests: real HTTP ``CONNECT`` tunnels, and plain-HTTP
requests in absolute form, each recorded. Names under ``.proxied.test`` (a reserved top-level
domain that resolves nowhere) lead to 127.0.0.1: a client reaches them only through the proxy."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

__all__ = ["ForwardProxy", "forward_proxy"]

PROXIED_DOMAIN = ".proxied.test"
TIMEOUT = 30  # every wait on either side
MAX_HEAD = 64 * 1024


class ForwardProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []  # "CONNECT host:port" or "GET http://host:port/path"
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, line: str) -> None:
        with self.lock:
            self.seen.append(line)


class _Handler(socketserver.BaseRequestHandler):
    server: ForwardProxy

    def handle(self) -> None:
        client = self.request
        client.settimeout(TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk or len(head) > MAX_HEAD:
                return
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        request_line, *headers = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ")
        self.server.record(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._dial(host, int(port))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            parts = urlsplit(target)
            upstream = self._dial(parts.hostname or "", parts.port or 80)
            origin = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = [h for h in headers if not h.lower().startswith("proxy-")]
            upstream.sendall("\r\n".join([f"{method} {origin} {version}", *kept, "", ""])
                             .encode("latin-1") + rest)
        with upstream:
            _relay(client, upstream)

    @staticmethod
    def _dial(host: str, port: int) -> socket.socket:
        address = "127.0.0.1" if host.endswith(PROXIED_DOMAIN) else host
        return socket.create_connection((address, port), timeout=TIMEOUT)


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes or nothing moves for ``TIMEOUT`` seconds."""
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], TIMEOUT)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)


@contextmanager
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)
