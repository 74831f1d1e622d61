"""``address: ":443"`` listens on IPv4 and IPv6, as Go's net.Listen does for step-ca, and on
IPv4 alone where the machine has no IPv6. Real sockets on 127.0.0.1 and ::1."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import textwrap

import pytest

from stepca.listening import listen
from stepca.testing.http import exchange, free_dual_stack_port, read_response, running_ca
from stepca.testing.process import free_port


def reaches(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def accepted_from(listener: socket.socket, host: str) -> str:
    """Connect from ``host`` and return the address the listener saw."""
    with socket.create_connection((host, listener.getsockname()[1]), timeout=5):
        peer, address = listener.accept()
        peer.close()
        return str(address[0])


@pytest.mark.parametrize("wildcard", ["", "0.0.0.0", "[::]"])
def test_a_wildcard_address_listens_on_ipv4_and_ipv6(wildcard):
    port = free_dual_stack_port()
    with listen(f"{wildcard}:{port}") as listener:
        assert listener.family == socket.AF_INET6
        assert listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        assert accepted_from(listener, "127.0.0.1") == "::ffff:127.0.0.1"
        assert accepted_from(listener, "::1") == "::1"


@pytest.mark.parametrize(("address", "other"), [("127.0.0.1", "::1"), ("[::1]", "127.0.0.1"),
                                                ("localhost", "::1")])
def test_a_given_address_listens_on_that_address_alone(address, other):
    port = free_port()
    with listen(f"{address}:{port}") as listener:
        assert listener.getsockname()[1] == port
        assert not reaches(other, port)  # localhost: its IPv4 address, as Go picks


def test_a_port_in_use_is_an_error():
    with listen(f":{free_dual_stack_port()}") as taken:
        with pytest.raises(OSError):
            listen(f"127.0.0.1:{taken.getsockname()[1]}")


# A seccomp filter makes socket(AF_INET6, ...) fail with EAFNOSUPPORT, as on a kernel without
# IPv6 (ipv6.disable=1): then listen(":port") must serve IPv4 without an error.
NO_IPV6_CHILD = textwrap.dedent("""
    import ctypes, socket, struct, sys
    from stepca.listening import listen

    def insn(code, jt, jf, k):
        return struct.pack("HBBI", code, jt, jf, k)

    LD, JEQ, RET = 0x20, 0x15, 0x06
    program = b"".join([
        insn(LD, 0, 0, 4), insn(JEQ, 0, 5, 0xC000003E),  # x86-64, else allow
        insn(LD, 0, 0, 0), insn(JEQ, 0, 3, 41),  # socket(2), else allow
        insn(LD, 0, 0, 16), insn(JEQ, 0, 1, socket.AF_INET6),  # family, else allow
        insn(RET, 0, 0, 0x00050000 | 97),  # errno EAFNOSUPPORT
        insn(RET, 0, 0, 0x7FFF0000),  # allow
    ])
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0  # seccomp filter
    try:
        socket.socket(socket.AF_INET6)
        sys.exit("the filter did not take")
    except OSError:
        pass
    listener = listen(":" + sys.argv[1])
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5):
        peer, address = listener.accept()
    print(listener.family.name, address[0])
""")


@pytest.mark.skipif(platform.machine() != "x86_64" or sys.platform != "linux",
                    reason="the seccomp filter is written for Linux on x86-64")
def test_without_ipv6_a_wildcard_address_listens_on_ipv4():
    port = free_port()
    result = subprocess.run([sys.executable, "-c", NO_IPV6_CHILD, str(port)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "AF_INET 127.0.0.1\n"


def test_step_ca_on_port_alone_serves_ipv4_and_ipv6_clients(tmp_path):
    with running_ca(tmp_path, host="") as ca:
        for host in ("127.0.0.1", "::1"):
            with ca.connect(host=host) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                status, _, body, _ = read_response(sock)
                assert (status, body) == (200, b'{"status":"ok"}\n')
        # the access log names an IPv4 client as Go does, not as ::ffff:127.0.0.1
        assert exchange(ca, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
        logs = ca.process.logs()
        assert 'INFO stepca.access: 127.0.0.1 "GET /version HTTP/1.1" 200' in logs
        assert 'INFO stepca.access: ::1 "GET /health HTTP/1.1" 200' in logs
        assert "::ffff:" not in logs


def test_ipv4_and_ipv6_clients_count_against_the_same_connection_cap(tmp_path):
    with running_ca(tmp_path, host="", headerTimeout=60, maxConnections=4,
                    maxConnectionsPerClient=4) as ca:
        # silent connections, two of each family; one socket accepts them in arrival order
        held = [socket.create_connection((host, ca.port), timeout=10)
                for host in ("127.0.0.1", "::1", "::1", "127.0.0.1")]
        try:
            with socket.create_connection(("::1", ca.port), timeout=10):
                # the fifth makes room by dropping the one that waited longest: the first
                assert held[0].recv(1) == b""
        finally:
            for sock in held:
                sock.close()
