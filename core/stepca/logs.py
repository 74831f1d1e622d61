"""Log lines that a client cannot forge: whatever a request carried is written escaped.

Every line written while a request is served carries that request's fields (``request_id``,
and where the authority knows them ``provisioner``, ``subject``, ``serial``): the app opens
them with ``begin_request`` and the authority adds to them with ``annotate``. ca.json's
``logger.format`` picks text lines (``LineFormatter``) or JSON lines (``JSONFormatter``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

__all__ = ["JSONFormatter", "LineFormatter", "annotate", "begin_request", "configure_logging",
           "end_request", "escape", "iso_time", "json_line", "json_lines", "request_fields",
           "text_fields"]

# C0 controls, DEL, C1 controls (U+0085 is a line break to some readers) and Unicode's own
# line and paragraph separators.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
TRACEBACK_PREFIX = "  | "


def escape(value: object) -> str:
    """``value`` as text with every control character written as an escape (``\\x0a``)."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text  # the common case, checked in C
    return text.translate(_CONTROLS)


# The fields of the request being served in this thread or task; None outside a request.
_request: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "stepca_request", default=None)


def begin_request(request_id: str) -> contextvars.Token[dict[str, object] | None]:
    """Open the fields of one request, starting with its id, for every line logged until
    ``end_request``."""
    return _request.set({"request_id": request_id})


def end_request(token: contextvars.Token[dict[str, object] | None]) -> None:
    _request.reset(token)


def annotate(**fields: object) -> None:
    """Add ``fields`` (None values left out) to the current request's, if any. Never a secret:
    a token, a password or a key."""
    current = _request.get()
    if current is not None:
        current.update((key, value) for key, value in fields.items() if value is not None)


def request_fields() -> dict[str, object] | None:
    return _request.get()


def text_fields(fields: dict[str, object] | None) -> str:
    """`` key=value`` for each field, escaped; quoted when the value holds a space, a quote or
    nothing."""
    if not fields:
        return ""
    parts = []
    for key, value in fields.items():
        text = escape(value)
        if not text or " " in text or '"' in text or "=" in text:
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f" {key}={text}")
    return "".join(parts)


class LineFormatter(logging.Formatter):
    """One line per record, whatever its message holds; a traceback follows on lines that
    begin with ``"  | "``, so nothing in an exception's text can pose as a record of its own.
    A record logged while a request is served ends with that request's fields."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record) + text_fields(_request.get())

    def formatException(self, ei: object) -> str:
        return _indented(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join(TRACEBACK_PREFIX + escape(line) for line in text.splitlines())


def json_line(fields: dict[str, Any]) -> str:
    """``fields`` as one line of JSON: ASCII only, so every control character, U+2028 and
    U+2029 included, is escaped and the line cannot be split."""
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"


def iso_time(seconds: float) -> str:
    """``2026-12-06T18:40:03.123Z``: UTC, to the millisecond."""
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int(seconds % 1 * 1000):03d}Z")


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, the request's
    fields and, when there is one, the ``exception`` as text."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": iso_time(record.created), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        line.update(_request.get() or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json_line(line)[:-1]


_json_lines = False


def json_lines() -> bool:
    """Whether ``configure_logging`` chose JSON lines (``stepca.app.AccessLog`` asks)."""
    return _json_lines


def configure_logging(format: str = "text") -> None:
    """One line per record on stderr, ``text``: ``<date> <time>,<ms> <LEVEL> <logger>:
    <message>[ <field>=<value>...]``, or ``json``; ``stepca.app.AccessLog`` writes its lines
    in the same shape."""
    global _json_lines
    _json_lines = format == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if _json_lines else LineFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
