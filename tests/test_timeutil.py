"""Durations as Go's time.ParseDuration reads them, and RFC 3339 times as Go's
time.Parse(time.RFC3339, ...) reads them: what Go refuses is a ValueError here, never an
IndexError or OverflowError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stepca.timeutil import (
    DurationOutOfRange,
    parse_duration,
    parse_time,
    parse_time_or_duration,
)

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("0", timedelta(0)), ("+0", timedelta(0)), ("-0", timedelta(0)),
    ("5m", timedelta(minutes=5)), ("1h30m", timedelta(hours=1, minutes=30)),
    ("-1.5h", timedelta(hours=-1.5)), (".5s", timedelta(seconds=0.5)),
    ("5.s", timedelta(seconds=5)), ("1500ms", timedelta(seconds=1.5)),
    ("3µs", timedelta(microseconds=3)), ("3μs", timedelta(microseconds=3)),
    ("3us", timedelta(microseconds=3)), ("1000ns", timedelta(microseconds=1)),
    ("2562047h47m16s", timedelta(hours=2562047, minutes=47, seconds=16)),  # Go's maximum
    ("000000000000000000000001h", timedelta(hours=1)),  # leading zeros are no overflow
    ("1.00000000000000000000000001h", timedelta(hours=1)),
])
def test_go_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", [
    "", " ", "+", "-", "+-1h", "1", "h", ".h", "1d", "1 h", "1h 2m", "1e3h", "NaN", "nanh",
    "inf", "Infinity", "0x10h", "١h", "５h", "1h\x00", "\x00",
])
def test_durations_go_refuses(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", [
    "2562047h47m17s", "9999999999h", "-9999999999h", "1" * 5000 + "h", "9223372036854775808ns",
])
def test_durations_beyond_go_int64_nanoseconds(text):
    with pytest.raises(DurationOutOfRange, match="longer than 2562047h47m16s"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2030-01-02t03:04:05z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2030-01-02T03:04:05.123456789+01:30", datetime(2030, 1, 2, 1, 34, 5, 123456, tzinfo=UTC)),
    ("2030-01-02T03:04:05-23:59", datetime(2030, 1, 3, 3, 3, 5, tzinfo=UTC)),
    ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
])
def test_rfc3339_times(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("2030-01-02T03:04:05", "has no time zone"),
    ("2030-01-02 03:04:05Z", "is not an RFC 3339 time"),
    ("20300102T030405Z", "is not an RFC 3339 time"),  # ISO 8601 basic form: not RFC 3339
    ("2030-01-02", "is not an RFC 3339 time"),
    ("0000-01-01T00:00:00Z", "is not a valid date and time"),
    ("10000-01-01T00:00:00Z", "is not an RFC 3339 time"),
    ("2030-02-30T00:00:00Z", "is not a valid date and time"),
    ("2030-01-01T24:00:00Z", "is not a valid date and time"),
    ("2030-01-01T23:59:60Z", "is not a valid date and time"),
    ("2030-01-01T00:00:00+24:00", "invalid time zone offset"),
    ("٢٠٣٠-01-01T00:00:00Z", "is not an RFC 3339 time"),
])
def test_times_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_time(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_beyond_the_calendar(text):
    with pytest.raises(DurationOutOfRange, match="is out of range"):
        parse_time(text)


def test_time_or_duration():
    assert parse_time_or_duration("2h", relative_to=NOW) == NOW + timedelta(hours=2)
    assert parse_time_or_duration("2031-01-01T00:00:00Z", relative_to=NOW) == \
        datetime(2031, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="is neither an RFC 3339 time nor a duration"):
        parse_time_or_duration("soon", relative_to=NOW)
    with pytest.raises(ValueError, match="has no time zone"):
        parse_time_or_duration("2031-01-01T00:00:00", relative_to=NOW)


def test_duration_past_the_calendar_is_a_value_error():
    with pytest.raises(DurationOutOfRange, match="is out of range"):
        parse_time_or_duration("2562047h", relative_to=datetime(9800, 1, 1, tzinfo=UTC))
    with pytest.raises(DurationOutOfRange, match="is out of range"):
        parse_time_or_duration("-2562047h", relative_to=datetime(100, 1, 1, tzinfo=UTC))


def test_messages_escape_and_cut_the_value():
    with pytest.raises(ValueError) as caught:
        parse_time_or_duration("x\r\nFORGED " + "y" * 500, relative_to=NOW)
    message = str(caught.value)
    assert "\r" not in message and "\n" not in message and "\\r\\n" in message
    assert len(message) < 200
