"""Every refusal of POST /sign: the status, the message, and that nothing was written (no
certificate row, no spent token id). Where the token itself was valid, the test then uses the
same token successfully, proving it was not spent by the refusal."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stepca.jose import b64url_encode
from stepca.testing import make_csr, make_token
from stepca.testing.http import call_wsgi
from stepca.timeutil import utcnow
from stepca.x509util import generate_key

UNAUTHORIZED = "The request lacked necessary authorization to be completed: "
FORBIDDEN = "The request was forbidden by the certificate authority: "
BAD_REQUEST = "The request could not be completed: "


def counts(ca) -> tuple[int, int]:
    """(issued certificates, spent token ids)."""
    return ca.rows()[:2]


def refused(ca, response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json == {"status": status, "message": message}
    assert counts(ca) == (0, 0), "a refused request wrote to the database"


def raw_token(header: dict, claims: dict, signature: bytes = b"") -> str:
    head = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url_encode(signature)}"


def claims_for(pki, subject="foo.example.com", **extra):
    now = int(utcnow().timestamp())
    return {"aud": "https://localhost:9000/1.0/sign", "iss": pki.provisioner_name,
            "sub": subject, "iat": now, "nbf": now, "exp": now + 300, "jti": "a" * 64,
            "sans": [subject], **extra}


# -- token refusals (401) --------------------------------------------------------------------------

# Each case builds its token arguments when the test runs: times taken at collection would go
# stale in a long run.
@pytest.mark.parametrize(("token_args", "reason"), [
    (lambda now: {"now": now - timedelta(minutes=10)}, "invalid token: token has expired"),
    (lambda now: {"nbf": int((now + timedelta(minutes=5)).timestamp()),
                  "exp": int((now + timedelta(minutes=9)).timestamp())},
     "invalid token: token is not yet valid"),
    (lambda now: {"iat": int((now + timedelta(minutes=5)).timestamp())},
     "invalid token: token was issued in the future"),
    (lambda now: {"omit": ["exp"]}, "invalid token: exp is required"),
    (lambda now: {"lifetime": timedelta(hours=2)},
     "invalid token: a token may be valid for at most 1h0m0s"),
    (lambda now: {"audience": "https://other.example.com/1.0/sign"},
     "invalid token: wrong audience"),
    (lambda now: {"audience": "https://localhost:9000/1.0/revoke"},
     "invalid token: wrong audience"),
    (lambda now: {"sub": ""}, "invalid token: subject is required"),
    (lambda now: {"jti": 7}, "invalid token: jti must be a non-empty string"),
])
def test_invalid_token_claims(stepca_pki, stepca_ca, token_args, reason):
    csr, _ = make_csr()
    response = stepca_ca.sign(csr, make_token(stepca_pki, **token_args(utcnow())))
    refused(stepca_ca, response, 401, f"{UNAUTHORIZED}{reason}.")


def test_token_issued_before_ca_start(stepca_pki, stepca_ca):
    csr, _ = make_csr()
    started = stepca_ca.authority.started_at
    token = make_token(stepca_pki, iat=int((started - timedelta(minutes=3)).timestamp()))
    refused(stepca_ca, stepca_ca.sign(csr, token), 401,
            f"{UNAUTHORIZED}token issued before the bootstrap of certificate authority.")


@pytest.mark.parametrize("override", [{"issuer": "someone-else"}, {"kid": "not-the-kid"}])
def test_unknown_issuer_or_kid(stepca_pki, stepca_ca, override):
    csr, _ = make_csr()
    refused(stepca_ca, stepca_ca.sign(csr, make_token(stepca_pki, **override)), 401,
            f"{UNAUTHORIZED}invalid token: no provisioner matches its issuer and key id.")


def test_signature_by_another_key(stepca_pki, stepca_ca):
    csr, _ = make_csr()
    token = make_token(stepca_pki, key=ec.generate_private_key(ec.SECP256R1()))
    refused(stepca_ca, stepca_ca.sign(csr, token), 401,
            f"{UNAUTHORIZED}invalid token: invalid token signature.")


def test_tampered_payload(stepca_pki, stepca_ca):
    csr, _ = make_csr("evil.example.com")
    head, _, sig = make_token(stepca_pki).split(".")
    forged = f"{head}.{b64url_encode(json.dumps(claims_for(stepca_pki, 'evil.example.com')).encode())}.{sig}"
    refused(stepca_ca, stepca_ca.sign(csr, forged), 401,
            f"{UNAUTHORIZED}invalid token: invalid token signature.")


def test_alg_none(stepca_pki, stepca_ca):
    csr, _ = make_csr()
    token = raw_token({"alg": "none", "kid": stepca_pki.provisioner_kid, "typ": "JWT"},
                      claims_for(stepca_pki))
    refused(stepca_ca, stepca_ca.sign(csr, token), 401,
            f"{UNAUTHORIZED}invalid token: token algorithm none does not match the key's ES256.")


def test_hmac_signed_with_the_public_key(stepca_pki, stepca_ca):
    """The classic algorithm confusion: HS256 keyed with the provisioner's public key."""
    csr, _ = make_csr()
    public = stepca_pki.provisioner_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": stepca_pki.provisioner_kid, "typ": "JWT"}
    unsigned = raw_token(header, claims_for(stepca_pki)).rsplit(".", 1)[0]
    signature = hmac.new(public, unsigned.encode(), hashlib.sha256).digest()
    refused(stepca_ca, stepca_ca.sign(csr, f"{unsigned}.{b64url_encode(signature)}"), 401,
            f"{UNAUTHORIZED}invalid token: token algorithm HS256 does not match the key's ES256.")


def test_other_ecdsa_alg_on_p256_key(stepca_pki, stepca_ca):
    csr, _ = make_csr()
    p384 = ec.generate_private_key(ec.SECP384R1())
    token = make_token(stepca_pki, key=p384)
    refused(stepca_ca, stepca_ca.sign(csr, token), 401,
            f"{UNAUTHORIZED}invalid token: token algorithm ES384 does not match the key's ES256.")


@pytest.mark.parametrize("ott", [
    "not-a-jwt", "a.b.c", "x" * 20000,
    # payloads a lenient parser reads or chokes on: NaN, and nesting past 1,024 levels
    b64url_encode(b"{}") + "." + b64url_encode(b'{"exp": NaN}') + ".AA",
    b64url_encode(b"{}") + "." + b64url_encode(b"[" * 1100 + b"]" * 1100) + ".AA",
])
def test_malformed_token(stepca_ca, ott):
    csr, _ = make_csr()
    response = stepca_ca.sign(csr, ott)
    assert response.status_code == 401
    assert response.json["message"].startswith(f"{UNAUTHORIZED}invalid token: ")
    assert counts(stepca_ca) == (0, 0)


def test_replay_is_refused_and_writes_nothing_more(stepca_pki, stepca_ca):
    token = make_token(stepca_pki)
    first = stepca_ca.sign(make_csr()[0], token)
    assert first.status_code == 201
    assert counts(stepca_ca) == (1, 1)
    second = stepca_ca.sign(make_csr()[0], token)
    assert second.status_code == 401
    assert second.json["message"] == f"{UNAUTHORIZED}token already used."
    assert counts(stepca_ca) == (1, 1)


def test_token_without_jti_is_spent_by_hash(stepca_pki, stepca_ca):
    token = make_token(stepca_pki, omit=["jti"])
    assert stepca_ca.sign(make_csr()[0], token).status_code == 201
    assert stepca_ca.sign(make_csr()[0], token).status_code == 401


# -- CSR refusals (403/400): the token stays unspent -----------------------------------------------

def assert_token_still_good(stepca_pki, ca, token, subject="foo.example.com"):
    good = ca.sign(make_csr(subject)[0], token)
    assert good.status_code == 201, good.text
    assert counts(ca) == (1, 1)


# Lists print as Go's %v does, in request order: [a b], never Python's sorted ['a', 'b'].
@pytest.mark.parametrize(("csr_args", "message"), [
    ({"subject": "foo.example.com", "sans": ["bar.example.com"]},
     "certificate request does not contain the valid DNS names - got [bar.example.com], "
     "want [foo.example.com]"),
    ({"subject": "foo.example.com", "sans": ["foo.example.com", "zz.example.com", "a.example.com"]},
     "certificate request does not contain the valid DNS names - got [foo.example.com "
     "zz.example.com a.example.com], want [foo.example.com]"),
    ({"subject": "foo.example.com", "sans": ["foo.example.com", "10.0.0.1"]},
     "certificate request does not contain the valid IP addresses - got [10.0.0.1], want []"),
    # step-ca checks email addresses before IP addresses
    ({"subject": "foo.example.com", "sans": ["foo.example.com", "10.0.0.1", "a@example.com"]},
     "certificate request does not contain the valid email addresses - got [a@example.com], "
     "want []"),
    ({"subject": "other.example.com", "sans": []},
     "certificate request does not contain the valid common name - got other.example.com, "
     "want [foo.example.com foo.example.com]"),
])
def test_csr_names_must_match_the_token(stepca_pki, stepca_ca, csr_args, message):
    token = make_token(stepca_pki)
    csr, _ = make_csr(csr_args["subject"], csr_args["sans"])
    refused(stepca_ca, stepca_ca.sign(csr, token), 403, f"{FORBIDDEN}{message}.")
    assert_token_still_good(stepca_pki, stepca_ca, token)


def test_csr_may_omit_sans_and_cn(stepca_pki, stepca_ca):
    token = make_token(stepca_pki, sans=["foo.example.com", "10.1.2.3"])
    response = stepca_ca.sign(make_csr("", [])[0], token)
    assert response.status_code == 201, response.text
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(v) for v in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert san.get_values_for_type(x509.DNSName) == ["foo.example.com"]


def test_rsa_key_under_2048_bits(stepca_pki, stepca_ca):
    from cryptography.hazmat.primitives.asymmetric import rsa

    token = make_token(stepca_pki)
    small = rsa.generate_private_key(65537, 1024)
    refused(stepca_ca, stepca_ca.sign(make_csr(key=small)[0], token), 403,
            f"{FORBIDDEN}certificate request RSA key must be at least 2048 bits (256 bytes).")
    assert_token_still_good(stepca_pki, stepca_ca, token)


def test_key_types_the_ca_does_not_issue_for(stepca_pki, stepca_ca):
    from cryptography.hazmat.primitives.asymmetric import ed448

    token = make_token(stepca_pki)
    refused(stepca_ca, stepca_ca.sign(make_csr(key=ed448.Ed448PrivateKey.generate())[0], token),
            403, f"{FORBIDDEN}certificate request key of type Ed448 is not supported; the CA "
            "certifies EC P-256, P-384 or P-521, Ed25519, or RSA of 2048 to 8192 bits.")
    assert_token_still_good(stepca_pki, stepca_ca, token)


@pytest.mark.parametrize("kind", ["EC", "OKP"])
def test_ec_and_ed25519_keys_need_no_size_check(stepca_pki, stepca_ca, kind):
    from cryptography import x509

    key = generate_key(kind)
    response = stepca_ca.sign(make_csr(key=key)[0], make_token(stepca_pki))
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    assert cert.public_key() == key.public_key()


def test_rsa_2048_gets_key_encipherment(stepca_pki, stepca_ca):
    from cryptography import x509

    response = stepca_ca.sign(make_csr(key=generate_key("RSA", size=2048))[0],
                              make_token(stepca_pki))
    assert response.status_code == 201
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment


def test_csr_fingerprint_pinned_by_cnf(stepca_pki, stepca_ca):
    token = make_token(stepca_pki, cnf={"x5rt#S256": "A" * 43})
    refused(stepca_ca, stepca_ca.sign(make_csr()[0], token), 403,
            f"{FORBIDDEN}certificate request fingerprint does not match the token's cnf claim.")


@pytest.mark.parametrize(("extra", "status", "message"), [
    ({"notAfter": "48h"}, 403, f"{FORBIDDEN}requested duration of 48h1m0s is more than the "
                               "authorized maximum certificate duration of 24h1m0s."),
    ({"notAfter": "1m"}, 403, f"{FORBIDDEN}requested duration of 2m0s is less than the "
                              "authorized minimum certificate duration of 5m0s."),
    ({"notBefore": "2000-01-01T00:00:00Z", "notAfter": "2000-01-02T00:00:00Z"}, 400,
     f"{BAD_REQUEST}notAfter cannot be in the past."),
    ({"notBefore": "2h", "notAfter": "-1h"}, 400,
     f"{BAD_REQUEST}notAfter cannot be before notBefore."),
    ({"notAfter": "soon"}, 400,
     f"{BAD_REQUEST}notAfter: 'soon' is neither an RFC 3339 time nor a duration."),
])
def test_durations_outside_the_claims(stepca_pki, stepca_ca, extra, status, message):
    token = make_token(stepca_pki)
    refused(stepca_ca, stepca_ca.sign(make_csr()[0], token, **extra), status, message)
    assert_token_still_good(stepca_pki, stepca_ca, token)


def test_requested_duration_within_claims(stepca_pki, stepca_ca):
    from cryptography import x509

    response = stepca_ca.sign(make_csr()[0], make_token(stepca_pki), notAfter="2h")
    assert response.status_code == 201
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    # notAfter counts from "now" and the default backdate of one minute is added before it
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=2, minutes=1)


# -- malformed requests (400/404/413) --------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ({"ott": "x"}, "missing csr"),
    ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
      "ott": "x"}, "invalid csr"),
    ({"csr": 5, "ott": "x"}, "csr must be a string"),
])
def test_bad_csr(stepca_ca, body, message):
    response = stepca_ca.client.simulate_post("/sign", json=body)
    refused(stepca_ca, response, 400, f"{BAD_REQUEST}{message}.")


def test_csr_with_bad_signature(stepca_pki, stepca_ca):
    from cryptography import x509

    pem, _ = make_csr()
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(
        serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature
    import base64
    tampered = ("-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)).decode()
                + "-----END CERTIFICATE REQUEST-----\n")
    response = stepca_ca.sign(tampered, make_token(stepca_pki))
    assert response.status_code == 400
    assert response.json["message"].startswith(f"{BAD_REQUEST}invalid csr")
    assert counts(stepca_ca) == (0, 0)


def test_missing_ott(stepca_ca):
    refused(stepca_ca, stepca_ca.client.simulate_post("/1.0/sign", json={"csr": make_csr()[0]}),
            400, f"{BAD_REQUEST}missing ott.")


@pytest.mark.parametrize("body", [
    b"{not json", b"[1, 2]", b"\xff\xfe", b"",
    b'{"csr": NaN, "ott": "x"}',  # not JSON (RFC 8259), though Python's json reads it
    b'{"csr": "\\ud800", "ott": "x"}',  # a lone surrogate is no Unicode text
    b'{"csr": "\xff", "ott": "x"}',  # not UTF-8
    b'{"a": ' * 2000 + b'1' + b'}' * 2000,  # nesting deep enough to exhaust a recursive parser
])
def test_malformed_json(stepca_ca, body):
    response = stepca_ca.client.simulate_post("/1.0/sign", body=body,
                                              headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["status"] == 400
    assert response.json["message"].startswith(f"{BAD_REQUEST}error decoding json")
    assert counts(stepca_ca) == (0, 0)


def test_oversized_body(stepca_pki, stepca_ca):
    body = json.dumps({"csr": make_csr()[0], "ott": make_token(stepca_pki),
                       "pad": "x" * 70000}).encode()
    response = stepca_ca.client.simulate_post("/1.0/sign", body=body,
                                              headers={"Content-Type": "application/json"})
    refused(stepca_ca, response, 413,
            f"{BAD_REQUEST}the request body is larger than 65536 bytes.")


def test_unknown_route(stepca_ca):
    for response in (stepca_ca.client.simulate_get("/1.0/nothing-here"),
                     stepca_ca.client.simulate_post("/sign/extra")):
        assert response.status_code == 404
        assert response.text == "404 page not found\n"  # Go's http.NotFound, as step-ca


def test_wrong_method(stepca_ca):
    assert call_wsgi(stepca_ca.client.app, "GET", "/1.0/sign") == (
        405, {"content-length": "0"}, b"")
