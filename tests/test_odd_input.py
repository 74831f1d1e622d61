"""Odd values in POST /sign that used to be a 500 (IndexError, OverflowError, ValueError deep in
the certificate builder): each is now a 4xx that says what is wrong, writes nothing and leaves
the token unspent (the same token then gets a certificate)."""

from __future__ import annotations

import sqlite3

import pytest
from cryptography import x509

from stepca.testing import make_csr, make_token

BAD_REQUEST = "The request could not be completed: "


def counts(ca) -> tuple[int, int]:
    with sqlite3.connect(ca.authority.config.db["dataSource"]) as conn:
        return (conn.execute("SELECT COUNT(*) FROM x509_certs").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM used_ott").fetchone()[0])


def refused_then_token_still_good(ca, token, response, status, message, *, csr=None):
    assert response.status_code == status, response.text
    assert response.json == {"status": status, "message": f"{BAD_REQUEST}{message}."}
    assert counts(ca) == (0, 0), "a refused request wrote to the database"
    good = ca.sign(csr or make_csr("", [])[0], token)
    assert good.status_code == 201, good.text
    assert counts(ca) == (1, 1)


# -- notBefore / notAfter --------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "message"), [
    ({"notBefore": " "}, "notBefore: ' ' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "\t"}, "notAfter: '\\t' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "9999999999h"},
     "notAfter: invalid duration '9999999999h': longer than 2562047h47m16s"),
    ({"notBefore": "-9999999999h"},
     "notBefore: invalid duration '-9999999999h': longer than 2562047h47m16s"),
    ({"notAfter": "1" * 5000 + "h"},
     f"notAfter: invalid duration {'1' * 64!r}...: longer than 2562047h47m16s"),
    ({"notAfter": "NaN"}, "notAfter: 'NaN' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "Infinity"},
     "notAfter: 'Infinity' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "1e9h"}, "notAfter: '1e9h' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "٥h"}, "notAfter: '٥h' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "\x00"}, "notAfter: '\\x00' is neither an RFC 3339 time nor a duration"),
    ({"notBefore": "9999-12-31T23:00:00Z"},
     "notBefore: a certificate starting then would end after the year 9999"),
    ({"notBefore": "9999-12-31T23:00:00Z", "notAfter": "2h"},
     "notAfter: '2h' from 9999-12-31T23:00:00Z is out of range"),
    ({"notBefore": "0001-01-01T00:00:00+01:00"},
     "notBefore: time '0001-01-01T00:00:00+01:00' is out of range"),
    ({"notAfter": "0000-01-01T00:00:00Z"},
     "notAfter: time '0000-01-01T00:00:00Z' is not a valid date and time: year 0 is out of "
     "range"),
    ({"notAfter": "10000-01-01T00:00:00Z"},
     "notAfter: '10000-01-01T00:00:00Z' is neither an RFC 3339 time nor a duration"),
    ({"notAfter": "2030-01-01T00:00:00"},
     "notAfter: time '2030-01-01T00:00:00' has no time zone: add Z or an offset such as +01:00"),
    ({"notAfter": "20300101T000000Z"},
     "notAfter: '20300101T000000Z' is neither an RFC 3339 time nor a duration"),
])
def test_odd_validity_is_a_400(stepca_pki, stepca_ca, extra, message):
    token = make_token(stepca_pki, sans=["foo.example.com"])
    response = stepca_ca.sign(make_csr("", [])[0], token, **extra)
    refused_then_token_still_good(stepca_ca, token, response, 400, message)


def test_far_future_end_is_refused_by_the_claims(stepca_pki, stepca_ca):
    response = stepca_ca.sign(make_csr()[0], make_token(stepca_pki),
                              notAfter="9999-12-31T23:59:59Z")
    assert response.status_code == 403, response.text
    assert "is more than the authorized maximum certificate duration" in response.json["message"]
    assert counts(stepca_ca) == (0, 0)


def test_far_future_start_within_the_claims_is_issued(stepca_pki, stepca_ca):
    """The calendar's last day is usable: only what would pass year 9999 is refused."""
    response = stepca_ca.sign(make_csr()[0], make_token(stepca_pki),
                              notBefore="9999-12-30T00:00:00Z", notAfter="9999-12-30T12:00:00Z")
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    assert cert.not_valid_after_utc.year == 9999
