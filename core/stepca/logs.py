"""Log lines that a client cannot forge: whatever a request carried is written escaped."""

from __future__ import annotations

import logging
import sys

__all__ = ["LineFormatter", "escape"]

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


class LineFormatter(logging.Formatter):
    """One line per record, whatever its message holds; a traceback follows on lines that
    begin with ``"  | "``, so nothing in an exception's text can pose as a record of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:
        return _indented(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join(TRACEBACK_PREFIX + escape(line) for line in text.splitlines())


def configure_logging() -> None:
    """One line per record on stderr: ``<date> <time>,<ms> <LEVEL> <logger>: <message>``;
    ``stepca.app.AccessLog`` writes its lines in the same shape."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
