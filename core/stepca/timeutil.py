"""Go-compatible durations and the ``<time|duration>`` values step and step-ca exchange."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_duration", "parse_duration", "parse_time_or_duration", "utcnow"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string (``"5m"``, ``"1h30m"``, ``"-1.5h"``); there is no ``d`` unit."""
    value = text.strip()
    sign = 1.0
    if value[:1] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if value == "0":
        return timedelta(0)
    pos, seconds = 0, 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r}")
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not value:
        raise ValueError(f"invalid duration {text!r}")
    return timedelta(seconds=sign * seconds)


def format_duration(delta: timedelta) -> str:
    """Format like Go's ``Duration.String()`` rounded to seconds: ``15h59m58s``, ``1m0s``, ``0s``."""
    total = int(round(delta.total_seconds()))
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return parsed.astimezone(UTC)


def parse_time_or_duration(text: str, *, relative_to: datetime) -> datetime:
    """An RFC 3339 time, or a duration added to ``relative_to``."""
    try:
        return relative_to + parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an RFC 3339 time nor a duration") from None
