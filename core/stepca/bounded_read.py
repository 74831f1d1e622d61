"""An HTTP answer's body read within a size and a time, for every client stepca runs: the
CLI's (stepca_cli.httpclient) and the CA's key fetches (stepca.remote_keys); and a file read
within a size."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["AnswerTooLarge", "FileTooLarge", "read_bounded", "read_file_bounded"]

_CHUNK = 64 * 1024


class AnswerTooLarge(OSError):
    """An ``OSError``, so that urllib closes the connection it came on."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


def read_bounded(answer: Any, limit: int, deadline: float) -> bytes:
    """The body of ``answer`` (an ``http.client.HTTPResponse``): ``AnswerTooLarge`` beyond
    ``limit`` bytes (the rest is never read), ``TimeoutError`` once ``time.monotonic()`` passes
    ``deadline`` (a server sending a byte at a time)."""
    declared = answer.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := answer.read1(min(_CHUNK, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(limit)
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took too long")
        chunks.append(chunk)
    return b"".join(chunks)


class FileTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


def read_file_bounded(path: Any, limit: int) -> bytes:
    """The bytes of the file at ``path``: ``FileTooLarge`` beyond ``limit`` (never read
    further), ``OSError`` when it cannot be read."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(limit)
    return data
