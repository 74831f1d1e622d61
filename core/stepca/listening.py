"""Listening sockets made as Go's ``net.Listen("tcp", address)`` makes them for step-ca."""

from __future__ import annotations

import socket

from stepca.config import split_address

__all__ = ["listen"]


def listen(address: str, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``address`` (``host:port``, ``[v6]:port`` or ``:port``).

    A wildcard host (empty, ``0.0.0.0`` or ``::``) listens on IPv4 and IPv6 through one
    dual-stack socket, as Go does, and on IPv4 alone where the machine has no IPv6. A host
    name listens on its first IPv4 address, else its first address, as Go does. Raises
    ``OSError`` (the port is taken, the address is not this machine's, ...)."""
    host, port = split_address(address)
    if host in ("", "0.0.0.0", "::"):
        if socket.has_dualstack_ipv6():  # False where the kernel has no IPv6
            return socket.create_server(("::", port), family=socket.AF_INET6, backlog=backlog,
                                        dualstack_ipv6=True)
        return socket.create_server(("0.0.0.0", port), backlog=backlog)
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, sockaddr = min(found, key=lambda info: info[0] != socket.AF_INET)
    return socket.create_server(sockaddr, family=family, backlog=backlog)
