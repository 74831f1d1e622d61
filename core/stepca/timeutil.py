"""Go-compatible durations and the ``<time|duration>`` values step and step-ca exchange."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from stepca.errors import shown

__all__ = ["DurationOutOfRange", "format_duration", "parse_duration", "parse_time",
           "parse_time_or_duration", "utcnow"]

_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 and U+03BC, as Go accepts both
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# ASCII digits only: Python's \d would also read "٥h" as five hours, which Go refuses.
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds: ~292 years
_MAX_INTEGER_DIGITS = len(str(MAX_DURATION_NS))
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                      r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})?")
_DATE_FIRST = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class DurationOutOfRange(ValueError):
    """A well-formed duration too long for Go's ``time.Duration`` or for the calendar."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string (``"5m"``, ``"1h30m"``, ``"-1.5h"``); there is no ``d`` unit.

    What Go's ``time.ParseDuration`` refuses is refused here too, including more than
    2562047h47m16s (its int64 of nanoseconds overflows)."""
    value = text.strip()
    negative = value[:1] == "-"
    if value[:1] in ("-", "+"):
        value = value[1:]
    if value == "0":
        return timedelta(0)
    if not value:
        raise ValueError(f"invalid duration {shown(text)}")
    pos, total = 0, 0
    while pos < len(value):
        match = _PART.match(value, pos)
        if not match or not (match.group(1) or match.group(2)):
            raise ValueError(f"invalid duration {shown(text)}")
        whole, fraction, unit = match.groups()
        scale = _NANOSECONDS[unit]
        if len(whole.lstrip("0")) > _MAX_INTEGER_DIGITS:  # before int(): it may be huge
            raise DurationOutOfRange(f"invalid duration {shown(text)}: longer than 2562047h47m16s")
        total += int(whole or "0") * scale
        if fraction:
            digits = fraction[:18]  # Go keeps no more precision than a nanosecond either
            total += int(digits) * scale // 10 ** len(digits)
        if total > MAX_DURATION_NS:
            raise DurationOutOfRange(f"invalid duration {shown(text)}: longer than 2562047h47m16s")
        pos = match.end()
    micro = total // 1000
    return timedelta(microseconds=-micro if negative else micro)


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
    """Parse an RFC 3339 timestamp (``2030-01-02T03:04:05Z``, ``...+01:00``, fractions of a
    second allowed) into an aware UTC datetime. Other ISO 8601 forms are refused, as Go's
    ``time.Parse(time.RFC3339, ...)`` refuses them."""
    match = _RFC3339.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{shown(text)} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone is None:
        raise ValueError(f"time {shown(text)} has no time zone: add Z or an offset such as +01:00")
    if zone in ("Z", "z"):
        tz = UTC
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"time {shown(text)} has an invalid time zone offset")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if zone[0] == "-" else offset)
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          int((fraction or "0").ljust(6, "0")[:6]), tzinfo=tz)
        return parsed.astimezone(UTC)
    except ValueError as exc:  # month 13, February 30, year 0, ...
        raise ValueError(f"time {shown(text)} is not a valid date and time: {exc}") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the calendar's first day
        raise DurationOutOfRange(f"time {shown(text)} is out of range") from None


def parse_time_or_duration(text: str, *, relative_to: datetime) -> datetime:
    """An RFC 3339 time, or a duration added to ``relative_to``. Every failure, including a
    result beyond the calendar (years 1 to 9999), is a ``ValueError`` that names the value."""
    try:
        delta = parse_duration(text)
    except DurationOutOfRange:
        raise
    except ValueError:
        pass
    else:
        try:
            return relative_to + delta
        except OverflowError:
            raise DurationOutOfRange(f"{shown(text)} from {relative_to:%Y-%m-%dT%H:%M:%SZ} is out "
                                     "of range") from None
    if _DATE_FIRST.match(text.strip()):
        return parse_time(text)  # it looks like a time: say what is wrong with it
    raise ValueError(f"{shown(text)} is neither an RFC 3339 time nor a duration")
