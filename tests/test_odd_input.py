"""Odd values in POST /sign that used to be a 500 (IndexError, OverflowError, ValueError deep in
the certificate builder): each is now a 4xx that says what is wrong, writes nothing and leaves
the token unspent (the same token then gets a certificate)."""

from __future__ import annotations

import pytest
from cryptography import x509
from stepca import hookimpl
from stepca.provisioner import Provisioner, SignOptions
from stepca.testing import TestCA, make_csr, make_token
from stepca.x509util import split_sans

BAD_REQUEST = "The request could not be completed: "


def counts(ca) -> tuple[int, int]:
    """(issued certificates, spent token ids)."""
    return ca.rows()[:2]


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


# -- names the token authorizes --------------------------------------------------------------------

@pytest.mark.parametrize(("subject", "sans", "message"), [
    ("bücher.example", ["bücher.example"],
     "DNS name 'bücher.example' is not ASCII: request its A-label 'xn--bcher-kva.example' "
     "instead"),
    ("foo.example.com", ["foo.example.com", "a b.example.com"],
     "DNS name 'a b.example.com' is not a valid host name (RFC 1123): the label 'a b' is not "
     "letters, digits and inner hyphens"),
    ("foo.example.com", ["foo\x00.example.com"],
     "DNS name 'foo\\x00.example.com' is not a valid host name (RFC 1123): the label "
     "'foo\\x00' is not letters, digits and inner hyphens"),
    ("foo.example.com", ["foo*.example.com"],
     "DNS name 'foo*.example.com' is not allowed: a wildcard must be the whole leftmost label, "
     "as in '*.example.com'"),
    ("foo.example.com", ["fe80::1%eth0"],
     "IP address 'fe80::1%eth0' has a zone, which a certificate cannot carry"),
    ("foo.example.com", ["a b@example.com"],
     "email address 'a b@example.com' has an invalid local part (RFC 5322 dot-atom of at most "
     "64 characters)"),
    ("foo.example.com", ["https://example.com/a b"],
     "URI 'https://example.com/a b' holds characters a URI cannot (RFC 3986): spaces, "
     "controls, or a '%' not followed by two hex digits"),
    ("Jane Doe", None,  # step's default SANs are [subject]: a DNS name with a space
     "DNS name 'Jane Doe' is not a valid host name (RFC 1123): the label 'Jane Doe' is not "
     "letters, digits and inner hyphens"),
    ("evil\u202etxt", ["foo.example.com"],
     "common name 'evil\\u202etxt' holds the control or invisible character U+202E"),
    ("foo\r\nbar", ["foo.example.com"],
     "common name 'foo\\r\\nbar' holds the control or invisible character U+000D"),
])
def test_malformed_names_are_a_400(stepca_pki, stepca_ca, subject, sans, message):
    token = make_token(stepca_pki, subject, sans=sans)
    response = stepca_ca.sign(make_csr("", [])[0], token)
    assert response.status_code == 400, response.text
    assert response.json == {"status": 400, "message": f"{BAD_REQUEST}{message}."}
    assert counts(stepca_ca) == (0, 0)


def test_a_label_and_wildcard_are_issued(stepca_pki, stepca_ca):
    sans = ["xn--bcher-kva.example", "*.example.com", "10.0.0.1", "ops@example.com",
            "spiffe://example.com/ns/x"]
    response = stepca_ca.sign(make_csr("", [])[0], make_token(stepca_pki, "Jane Doe", sans=sans))
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    assert cert.subject.rfc4514_string() == "CN=Jane Doe"  # a common name may hold a space
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example", "*.example.com"]


class LaxProvisioner(Provisioner):
    """Checks nothing about names: the certificate gets whatever the token lists, as the cloud
    provisioners copy a CSR's names. The Authority must still refuse a malformed name,
    whichever provisioner authorized it."""

    type = "LAX"

    @staticmethod
    def token_lookup_key(token):
        return "lax" if token.claims.get("iss") == "lax" else None

    @property
    def lookup_keys(self):
        return ("lax",)

    def authorize_sign(self, token):
        return SignOptions(token_id=token.claims["jti"], subject=token.claims["sub"],
                           sans=split_sans(token.claims["sans"]), claims=self.claims,
                           extension=None)


class LaxPlugin:
    @hookimpl
    def stepca_provisioner_types(self):
        return [LaxProvisioner]


@pytest.mark.parametrize(("subject", "sans", "message"), [
    ("ok.example", ["bücher.example"], "DNS name 'bücher.example' is not ASCII"),
    ("ok.example", ["a b"], "DNS name 'a b' is not a valid host name"),
    ("nul\x00", ["ok.example"], "common name 'nul\\x00' holds the control"),
])
def test_names_are_checked_whichever_provisioner_authorized_them(stepca_pki, tmp_path, subject,
                                                                  sans, message):
    jwk = stepca_pki.ca_json["authority"]["provisioners"][0]
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=[jwk, {"type": "LAX", "name": "lax"}]),
                plugins=[LaxPlugin()])
    try:
        refused = ca.sign(make_csr("", [])[0], make_token(stepca_pki, subject, sans=sans,
                                                          issuer="lax"))
        assert refused.status_code == 400, refused.text
        assert refused.json["message"].startswith(f"{BAD_REQUEST}{message}")
        assert counts(ca) == (0, 0)
        fine = ca.sign(make_csr("", [])[0], make_token(stepca_pki, "ok.example",
                                                       sans=["ok.example"], issuer="lax"))
        assert fine.status_code == 201, fine.text
    finally:
        ca.close()
