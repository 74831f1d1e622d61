"""A serial number in a revocation request is read as step-ca reads it, with Go's
``big.Int.SetString(s, 0)``: a leading 0 is octal, and what Go refuses is refused."""

from __future__ import annotations

import pytest

from stepca.authority import _parse_serial
from stepca.errors import BadRequest


@pytest.mark.parametrize(("text", "number"), [
    ("10", 10), ("010", 8), ("0x1f", 31), ("0X1F", 31), ("0o17", 15), ("0b101", 5),
    ("+12", 12), ("1_000", 1000), ("0_7", 7), ("+0x10", 16),
    (str(2**159 - 1), 2**159 - 1)])
def test_what_go_reads(text: str, number: int) -> None:
    assert _parse_serial(text) == number


@pytest.mark.parametrize("text", [
    " 12", "12 ", "1 2", "١٢", "0x", "08", "1__0", "_1", "1_", "+-1", "--1", "-5", "0", "00",
    "1e3", "0x1g"])
def test_what_go_refuses_or_is_no_serial(text: str) -> None:
    with pytest.raises(BadRequest, match="is not a valid serial number"):
        _parse_serial(text)
