"""Property-based tests (hypothesis) over what a client controls: the JSON bodies of /sign and
/revoke, the Bearer token of /renew, and OCSP requests, through the real Falcon app in-process.

For every input: no 5xx; an error has step-ca's shape; a refused request writes nothing
(x509_certs, used_ott and revoked_x509_certs keep their row counts, so no token is spent); what
is accepted writes exactly one row where it should, and a certificate issued carries only
well-formed names. Inputs are structure-aware: valid requests whose fields are replaced,
mutated or re-signed, so the examples reach the checks deep in the Authority, not only the
JSON decoder; plus plain random bytes and text."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from stepca import _der
from stepca.jose import sign_jwt
from stepca.names import check_common_name, check_sans
from stepca.ocsp_responder import issuer_hashes
from stepca.testing import TestCA, make_csr, make_token
from stepca.timeutil import utcnow
from stepca.x509util import SANs, subject_cn

# The budget, chosen on purpose. An example is one in-process request of 2-10 ms (a token
# signature and, when accepted, a certificate and a database commit): 250 of each kind and 500
# OCSP requests take about 10 s on the 2-core machine, in a suite that must stay far below 20
# minutes (8 today); --hypothesis-show-statistics shows how the examples spread over the
# answers (each property reaches success and several refusals). derandomize: the same examples
# on every run, so a failure in CI repeats on a laptop and the suite never turns red by luck;
# breadth comes from the strategies, and new ground is covered by changing them.
# deadline=None: this VM's speed varies by half within seconds (decision 0010), and a
# per-example deadline would make that a failure. database=None: no example database, since
# derandomized runs replay nothing from it (hypothesis still keeps a cache in .hypothesis/,
# which ignores itself in git).
BUDGET = settings(derandomize=True, deadline=None, database=None, max_examples=250,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RENEW_AUDIENCE = "https://localhost:9000/1.0/renew"
REVOKE_AUDIENCE = "https://localhost:9000/1.0/revoke"


@pytest.fixture(scope="module")
def lab(stepca_pki, tmp_path_factory):
    """One CA for all examples (a CA per example would cost more than the example), with CRL
    and OCSP on, and one certificate to renew and ask about."""
    ca = TestCA(stepca_pki.config(tmp_path_factory.mktemp("properties"), crl={"enabled": True},
                                  ocsp={"enabled": True}))
    csr, key = make_csr("svc.example.com")
    issued = ca.sign(csr, make_token(stepca_pki, "svc.example.com"))
    assert issued.status_code == 201, issued.text
    chain = [x509.load_pem_x509_certificate(c.encode()) for c in issued.json["certChain"]]
    yield Lab(stepca_pki, ca, chain, key)
    ca.close()


class Lab:
    def __init__(self, pki, ca, chain, key) -> None:
        self.pki, self.ca, self.chain, self.key = pki, ca, chain, key
        self.empty_csr = make_csr("", [])[0]  # asks for nothing: always within a token's names
        self.stranger_key = ec.generate_private_key(ec.SECP256R1())

    def rows(self) -> tuple[int, int, int]:
        return self.ca.rows()


def no_server_error(response) -> None:
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics: how deep examples go
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
            "application/json"):
        assert response.json["status"] == response.status_code


# -- values ----------------------------------------------------------------------------------------

def mostly(usual, odd):
    """``usual`` about three times in four, else ``odd``: most examples should get past the
    first check they meet, to reach the ones behind it. (st.one_of(a, a, a, b) would not do:
    hypothesis merges equal branches.)"""
    return st.sampled_from([False, False, False, True]).flatmap(
        lambda is_odd: odd if is_odd else usual)


def sometimes(strategy, default):
    """``strategy`` about one time in five, else ``default``."""
    return mostly(st.just(default), strategy)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)

good_names = st.sampled_from(["foo.example.com", "*.example.com", "xn--bcher-kva.example",
                              "10.0.0.1", "::1", "ops@example.com", "spiffe://example.com/x",
                              "a-b.example"])
names = st.one_of(
    st.sampled_from([
        "foo.example.com", "*.example.com", "bücher.example", "xn--bcher-kva.example",
        "10.0.0.1", "::1", "fe80::1%eth0", "[::1]", "999.1.1.1", "ops@example.com",
        "a b@example.com", "spiffe://example.com/ns/x", "https://example.com/a b", "a b",
        "", " ", "*", "*.*.example", "foo*.example.com", "-a.example", "a..example",
        "example.com.", "x" * 64 + ".example", "nul\x00.example", "cr\r\nlf", "evil\u202ecom",
        "١٢٧.٠.٠.١", "Jane Doe", "under_score.example", "mailto:a@example.com"]),
    st.from_regex(r"[a-zA-Z0-9*._@:/%-]{1,24}", fullmatch=True),
    st.text(max_size=70),
)

durations = st.from_regex(r"[+-]?([0-9]{0,22}(\.[0-9]{0,4})?(ns|us|µs|ms|s|m|h|d|x|)){1,3}",
                          fullmatch=True)
times = st.one_of(
    st.from_regex(r"[0-9]{4,5}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?"
                  r"(Z|z|[+-][0-9]{2}:[0-9]{2})?", fullmatch=True),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
)
validity_values = mostly(st.sampled_from([None, "5m", "2h", "-1m", "24h"]),
                         st.one_of(durations, times, st.text(max_size=30), json_values))


@st.composite
def mutated(draw, text: str) -> str:
    """``text`` with one character replaced, removed or doubled."""
    if not text:
        return text
    # a position drawn independently of the length, which may vary between runs (a random
    # serial in a token), so hypothesis sees the same draws for the same example
    at = draw(st.integers(0, 2**16)) % len(text)
    how = draw(st.sampled_from(["replace", "remove", "double"]))
    if how == "replace":
        return text[:at] + draw(st.characters()) + text[at + 1:]
    if how == "remove":
        return text[:at] + text[at + 1:]
    return text[:at] + text[at] + text[at:]


@st.composite
def with_replaced_fields(draw, body: dict, fields: list[str]) -> dict:
    """``body`` with a field replaced by any JSON value, removed, or joined by an extra one."""
    body = dict(body)
    for _ in range(draw(sometimes(st.integers(1, 2), 0))):
        field = draw(st.sampled_from([*fields, "extra"]))
        if draw(st.booleans()):
            body[field] = draw(json_values)
        else:
            body.pop(field, None)
    return body


def post_json(ca, path: str, body, **kwargs):
    return ca.client.simulate_post(path, body=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"}, **kwargs)


# -- POST /sign ------------------------------------------------------------------------------------

@st.composite
def sign_bodies(draw, lab):
    subject = draw(mostly(good_names, names))
    sans = draw(mostly(st.none() | st.lists(good_names, min_size=1, max_size=3),
                       st.lists(names, max_size=4)))
    claims = draw(sometimes(st.dictionaries(
        st.sampled_from(["nbf", "exp", "iat", "jti", "aud", "iss", "sans", "cnf", "sub"]),
        json_values, min_size=1, max_size=2), {}))
    sans = claims.pop("sans", sans)
    token = make_token(lab.pki, subject, sans=sans, **claims)
    ott = draw(mostly(st.just(token), mutated(token) | st.text(max_size=40)))
    csr = lab.empty_csr
    match draw(mostly(st.sampled_from(["empty", "matching"]), st.sampled_from(["mutated",
                                                                               "text"]))):
        case "matching" if isinstance(sans, list | None) and all(
                isinstance(name, str) for name in sans or ()):
            try:
                csr = make_csr(subject, sans)[0]
            except (ValueError, TypeError):  # names the CSR builder itself refuses
                pass
        case "mutated":
            csr = draw(mutated(lab.empty_csr))
        case "text":
            csr = draw(st.text(max_size=60))
    body = {"csr": csr, "ott": ott}
    for field in ("notBefore", "notAfter"):
        value = draw(validity_values)
        if value is not None:
            body[field] = value
    return draw(with_replaced_fields(body, ["csr", "ott", "notBefore", "notAfter"]))


@BUDGET
@given(data=st.data())
def test_sign_never_fails_and_writes_only_what_it_issues(lab, data):
    body = data.draw(sign_bodies(lab))
    before = lab.rows()
    response = post_json(lab.ca, "/1.0/sign", body)
    no_server_error(response)
    if response.status_code != 201:
        assert lab.rows() == before, "a refused /sign wrote to the database"
        return
    assert lab.rows() == (before[0] + 1, before[1] + 1, before[2])
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    check_common_name(subject_cn(cert.subject))
    check_sans(SANs.of_csr(cert))


# -- POST /renew with a Bearer token ---------------------------------------------------------------

@st.composite
def renew_requests(draw, lab):
    leaf, inter = lab.chain
    now = int(utcnow().timestamp())
    claims = {"aud": RENEW_AUDIENCE, "iss": "step-ca-client/1.0", "sub": "svc.example.com",
              "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(16)}
    for field in draw(sometimes(st.lists(st.sampled_from(sorted(claims)), min_size=1,
                                         max_size=2, unique=True), [])):
        if draw(st.booleans()):
            claims[field] = draw(st.one_of(names, json_values))
        else:
            del claims[field]
    der = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
           for c in (leaf, inter)]
    chain = draw(mostly(st.just(der), st.one_of(
        st.just(der[:1]), st.just(der[::-1]),
        st.just([base64.b64encode(lab.pki.root.public_bytes(
            serialization.Encoding.DER)).decode()]),
        st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=40).map(
            lambda b: base64.b64encode(b).decode())), max_size=6),
        st.just(der).flatmap(lambda d: mutated(d[0]).map(lambda m: [m, d[1]])),
        json_values)))
    header = {"x5cInsecure": chain}
    if draw(sometimes(st.just(True), False)):
        header[draw(st.sampled_from(["crit", "kid", "typ", "x5c"]))] = draw(json_values)
    key = draw(mostly(st.just(lab.key), st.just(lab.stranger_key)))
    try:
        token = sign_jwt(claims, key, headers=header)
    except (TypeError, ValueError):  # a header python-jose cannot even encode
        token = draw(st.text(max_size=40))
    token = draw(mostly(st.just(token), mutated(token)))
    return draw(mostly(st.sampled_from([f"Bearer {token}", f"bearer  {token} "]), st.one_of(
        st.just(f"Basic {token}"), st.text(max_size=40), st.just("Bearer"))))


@BUDGET
@given(data=st.data())
def test_renew_by_token_never_fails_and_writes_only_what_it_issues(lab, data):
    authorization = data.draw(renew_requests(lab))
    before = lab.rows()
    try:
        response = lab.ca.client.simulate_post("/1.0/renew",
                                               headers={"Authorization": authorization})
    except (UnicodeEncodeError, ValueError):
        return  # no HTTP client sends this header: it is not latin-1 text
    no_server_error(response)
    if response.status_code != 201:
        assert lab.rows() == before, "a refused /renew wrote to the database"
    else:
        assert lab.rows() == (before[0] + 1, before[1] + 1, before[2])


# -- POST /revoke ----------------------------------------------------------------------------------

@st.composite
def revoke_bodies(draw, lab):
    if draw(mostly(st.just(True), st.just(False))):  # ours, so some revocations succeed
        csr = make_csr("rev.example.com")[0]
        issued = lab.ca.sign(csr, make_token(lab.pki, "rev.example.com"))
        serial = x509.load_pem_x509_certificate(issued.json["crt"].encode()).serial_number
    else:
        serial = draw(st.integers(-2**200, 2**200))
    serial_field = draw(mostly(st.sampled_from([str(serial), hex(serial)]), st.one_of(
        names, st.text(max_size=30), json_values)))
    subject = draw(mostly(st.just(str(serial)), names))
    token = make_token(lab.pki, subject, audience=REVOKE_AUDIENCE)
    ott = draw(mostly(st.just(token), st.one_of(mutated(token), st.text(max_size=30),
                                                st.none())))
    body = {"serial": serial_field,
            "reasonCode": draw(mostly(st.integers(0, 10), st.integers(-3, 12) | json_values)),
            "reason": draw(mostly(st.text(max_size=30), json_values)),
            "passive": draw(mostly(st.just(True), json_values))}
    if ott is not None:
        body["ott"] = ott
    return draw(with_replaced_fields(body, ["serial", "reasonCode", "reason", "passive", "ott"]))


@BUDGET
@given(data=st.data())
def test_revoke_never_fails_and_writes_only_what_it_revokes(lab, data):
    body = data.draw(revoke_bodies(lab))
    before = lab.rows()
    response = post_json(lab.ca, "/revoke", body)
    no_server_error(response)
    if response.status_code != 200:
        assert lab.rows() == before, "a refused /revoke wrote to the database"
    else:
        assert lab.rows() == (before[0], before[1] + 1, before[2] + 1)


# -- OCSP ------------------------------------------------------------------------------------------

HASH_OIDS = {"1.3.14.3.2.26": hashes.SHA1(), "2.16.840.1.101.3.4.2.4": hashes.SHA224(),
             "2.16.840.1.101.3.4.2.1": hashes.SHA256(), "2.16.840.1.101.3.4.2.2": hashes.SHA384(),
             "2.16.840.1.101.3.4.2.3": hashes.SHA512(), "1.2.840.113549.2.5": hashes.MD5(),
             "2.16.840.1.101.3.4.2.8": hashes.SHA3_256()}
oids = st.one_of(st.sampled_from([*HASH_OIDS, "1.3.6.1.5.5.7.48.1.2", "1.3.6.1.5.5.7.48.1.4"]),
                 st.lists(st.integers(0, 2**40), min_size=1, max_size=6).map(
                     lambda parts: ".".join(map(str, [1, 3, *parts]))))


@st.composite
def cert_ids(draw, lab):
    leaf, inter = lab.chain
    oid = draw(mostly(st.sampled_from(list(HASH_OIDS)[:5]), oids))
    issuer = draw(mostly(st.just(inter), st.just(lab.pki.root)))
    name_hash, key_hash = issuer_hashes(issuer, HASH_OIDS.get(oid, hashes.SHA1()))
    params = draw(mostly(st.sampled_from([_der.NULL, b""]), st.just(b"\x04\x00")))
    serial = draw(mostly(st.sampled_from([leaf.serial_number, 4242]),
                         st.integers(-2**170, 2**170)))
    return _der.sequence(
        _der.sequence(_der.oid(oid), params),
        _der.octets(draw(mostly(st.just(name_hash), st.binary(max_size=70)))),
        _der.octets(draw(mostly(st.just(key_hash), st.binary(max_size=70)))),
        _der.integer(serial))


@st.composite
def ocsp_requests(draw, lab):
    """DER OCSP requests built field by field, then perhaps damaged; or plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    count = draw(mostly(st.just(1), st.sampled_from([0, 2, 3])))
    requests = [_der.sequence(draw(cert_ids(lab))) for _ in range(count)]
    tbs = [_der.sequence(*requests)]
    extensions = [_der.sequence(_der.oid(draw(oids)),
                                *([b"\x01\x01\xff"] if draw(st.booleans()) else []),
                                _der.octets(draw(st.one_of(
                                    st.binary(max_size=40),
                                    st.binary(max_size=40).map(_der.octets)))))
                  for _ in range(draw(sometimes(st.integers(1, 2), 0)))]
    if extensions:
        tbs.append(_der.tlv(0xA2, _der.sequence(*extensions)))
    der = bytearray(_der.sequence(_der.sequence(*tbs)))
    for _ in range(draw(sometimes(st.integers(1, 2), 0))):
        at = draw(st.integers(0, 2**16)) % len(der)
        match draw(st.sampled_from(["flip", "cut", "insert"])):
            case "flip":
                der[at] ^= draw(st.integers(1, 255))
            case "cut":
                del der[at:]
                if not der:
                    break
            case "insert":
                der[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(der)


@settings(BUDGET, max_examples=500)
@given(data=st.data())
def test_ocsp_never_fails(lab, data):
    der = data.draw(ocsp_requests(lab))
    before = lab.rows()
    if data.draw(st.booleans()):
        response = lab.ca.client.simulate_post("/ocsp", body=der)
    else:
        response = lab.ca.client.simulate_get("/ocsp/" + base64.b64encode(der).decode())
    no_server_error(response)
    assert lab.rows() == before
    if response.status_code != 200:
        return
    answer = ocsp.load_der_ocsp_response(response.content)
    event(f"OCSP {answer.response_status.name}")
    if answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
        inter = lab.chain[1]
        inter.public_key().verify(answer.signature, answer.tbs_response_bytes,
                                  ec.ECDSA(hashes.SHA256()))
        assert (answer.issuer_name_hash, answer.issuer_key_hash) == issuer_hashes(
            inter, answer.hash_algorithm)
        assert answer.next_update_utc - answer.this_update_utc == timedelta(hours=1)
