"""Just enough DER to write the two structures no library here builds for us: step's
provisioner extension and a PKCS#8 key encrypted with 600,000 PBKDF2 rounds."""

from __future__ import annotations


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def integer(value: int) -> bytes:
    return tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


NULL = b"\x05\x00"


def string(value: str) -> bytes:
    """PrintableString when the characters allow it, else UTF8String (as Go marshals)."""
    printable = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
    return tlv(0x13 if set(value) <= printable else 0x0C, value.encode())


def read(data: bytes) -> tuple[int, bytes, bytes]:
    """(tag, body, rest) of the first element of ``data``."""
    if len(data) < 2:
        raise ValueError("truncated DER")
    tag, first, pos = data[0], data[1], 2
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[2:2 + count], "big")
        pos += count
    else:
        length = first
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], data[pos + length:]
