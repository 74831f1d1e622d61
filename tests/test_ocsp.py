"""The OCSP responder in-process (decision 0013): odd requests get an RFC 6960 error status or
an HTTP 4xx, never a 500; answers are cached per (serial, CertID hash, status) until shortly
before their nextUpdate, and a revocation, even by another process, changes the next answer."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from stepca import _der
from stepca.ocsp_responder import REFRESH_BEFORE, AnswerCache, issuer_hashes
from stepca.testing import TestCA, make_csr, make_token
from stepca.testing.http import call_wsgi
from stepca.timeutil import utcnow

SHA1, MD5, SHA3_256 = "1.3.14.3.2.26", "1.2.840.113549.2.5", "2.16.840.1.101.3.4.2.8"
NONCE_OID, ACCEPTABLE_RESPONSES_OID = "1.3.6.1.5.5.7.48.1.2", "1.3.6.1.5.5.7.48.1.4"
UNKNOWN_OID = "1.2.3.4.5.6.7"
TRUE = b"\x01\x01\xff"
MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
UNAUTHORIZED = ocsp.OCSPResponseStatus.UNAUTHORIZED


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now


def issue(ca, pki, subject="svc.example.com"):
    response = ca.sign(make_csr(subject)[0], make_token(pki, subject))
    assert response.status_code == 201, response.text
    return x509.load_pem_x509_certificate(response.json["crt"].encode())


def revoke(ca, pki, serial):
    response = ca.client.simulate_post("/revoke", json={
        "serial": str(serial), "reasonCode": 1, "passive": True,
        "ott": make_token(pki, str(serial), audience="https://localhost:9000/1.0/revoke")})
    assert response.status_code == 200, response.text


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ocsp_config(stepca_pki, tmp_path):
    return stepca_pki.config(tmp_path, ocsp={"enabled": True})


@pytest.fixture
def ocsp_ca(ocsp_config, clock):
    ca = TestCA(ocsp_config, clock=clock)
    yield ca
    ca.close()


@pytest.fixture
def leaf(stepca_pki, ocsp_ca):
    return issue(ocsp_ca, stepca_pki)


def post(ca, der: bytes):
    return ca.client.simulate_post("/ocsp", body=der,
                                   headers={"Content-Type": "application/ocsp-request"})


def get(ca, der: bytes):
    return ca.client.simulate_get("/ocsp/" + base64.b64encode(der).decode())


def answer(response) -> ocsp.OCSPResponse:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)


def request(leaf, issuer, algorithm=None, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


# -- requests built by hand: what no well-behaved builder makes ------------------------------------

def cert_id(issuer, serial, *, oid=SHA1, algorithm=None, params=_der.NULL) -> bytes:
    name_hash, key_hash = issuer_hashes(issuer, algorithm or hashes.SHA1())
    return _der.sequence(_der.sequence(_der.oid(oid), params), _der.octets(name_hash),
                         _der.octets(key_hash), _der.integer(serial))


def extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    return _der.sequence(_der.oid(oid), *([TRUE] if critical else []), _der.octets(value))


def raw_request(*cert_ids: bytes, extensions: tuple[bytes, ...] = ()) -> bytes:
    parts = [_der.sequence(*(_der.sequence(c) for c in cert_ids))]
    if extensions:
        parts.append(_der.tlv(0xA2, _der.sequence(*extensions)))
    return _der.sequence(_der.sequence(*parts))


def odd_requests(leaf, inter, root):
    serial = leaf.serial_number
    good = request(leaf, inter)
    return {
        "several certificates": (raw_request(cert_id(inter, serial), cert_id(inter, 5)),
                                 MALFORMED),
        "no certificate": (raw_request(), MALFORMED),
        "MD5 CertID": (raw_request(cert_id(inter, serial, oid=MD5, algorithm=hashes.MD5())),
                       UNAUTHORIZED),
        "SHA3-256 CertID": (raw_request(cert_id(inter, serial, oid=SHA3_256,
                                                algorithm=hashes.SHA3_256())), UNAUTHORIZED),
        "unknown hash OID": (raw_request(cert_id(inter, serial, oid=UNKNOWN_OID)), UNAUTHORIZED),
        "another issuer": (request(leaf, root), UNAUTHORIZED),
        "negative serial": (raw_request(cert_id(inter, -serial)), MALFORMED),
        "serial zero": (raw_request(cert_id(inter, 0)), MALFORMED),
        "21-octet serial": (raw_request(cert_id(inter, 2**160)), MALFORMED),
        "critical unknown extension": (raw_request(cert_id(inter, serial), extensions=(
            extension(UNKNOWN_OID, b"\x05\x00", critical=True),)), MALFORMED),
        "malformed AcceptableResponses": (raw_request(cert_id(inter, serial), extensions=(
            extension(ACCEPTABLE_RESPONSES_OID, _der.NULL),)), MALFORMED),
        "the same extension twice": (raw_request(cert_id(inter, serial), extensions=(
            extension(NONCE_OID, _der.octets(b"a" * 16)),
            extension(NONCE_OID, _der.octets(b"b" * 16)))), MALFORMED),
        "garbage": (b"garbage", MALFORMED),
        "empty": (b"", MALFORMED),
        "zero bytes": (b"\x00", MALFORMED),
        "truncated": (good[:-3], MALFORMED),
        "trailing bytes": (good + b"\x00", MALFORMED),
        "a certificate instead": (leaf.public_bytes(serialization.Encoding.DER), MALFORMED),
        "indefinite length (BER, not DER)": (b"\x30\x80" + good[2:] + b"\x00\x00", MALFORMED),
    }


CASES = ["several certificates", "no certificate", "MD5 CertID", "SHA3-256 CertID",
         "unknown hash OID", "another issuer", "negative serial", "serial zero",
         "21-octet serial", "critical unknown extension", "malformed AcceptableResponses",
         "the same extension twice", "garbage", "empty", "zero bytes", "truncated", "trailing bytes",
         "a certificate instead", "indefinite length (BER, not DER)"]


# GET /ocsp/ with an empty request is no OCSP GET at all: test_get_without_a_request
@pytest.mark.parametrize(("send", "case"), [(send, case) for send in (post, get) for case in CASES
                                            if not (send is get and case == "empty")])
def test_odd_requests_get_an_ocsp_error_status(stepca_pki, ocsp_ca, leaf, case, send):
    inter = ocsp_ca.authority.intermediates[0]
    der, status = odd_requests(leaf, inter, stepca_pki.root)[case]
    result = answer(send(ocsp_ca, der))
    assert result.response_status == status


def test_the_odd_cases_are_all_tested(stepca_pki, ocsp_ca, leaf):
    assert sorted(odd_requests(leaf, ocsp_ca.authority.intermediates[0], stepca_pki.root)) \
        == sorted(CASES)


def test_a_non_critical_unknown_extension_is_ignored(ocsp_ca, leaf):
    inter = ocsp_ca.authority.intermediates[0]
    der = raw_request(cert_id(inter, leaf.serial_number),
                      extensions=(extension(UNKNOWN_OID, b"\x05\x00"),))
    assert answer(post(ocsp_ca, der)).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize(("send", "der", "status", "message"), [
    (post, b"\x30" * 8193, 413, "an OCSP request is at most 8192 bytes"),
    (get, b"\x30" * 8200, 414, "an OCSP request is at most 8192 bytes: POST a larger one"),
])
def test_oversized_requests_are_refused_by_http(ocsp_ca, send, der, status, message):
    response = send(ocsp_ca, der)
    assert response.status_code == status
    assert message in response.json["message"]


def test_get_without_a_request(ocsp_ca):
    assert call_wsgi(ocsp_ca.client.app, "GET", "/ocsp")[0] == 405  # only POST /ocsp
    empty = ocsp_ca.client.simulate_get("/ocsp/")  # an empty request: a malformed one
    assert ocsp.load_der_ocsp_response(empty.content).response_status == MALFORMED


@pytest.mark.parametrize("path", ["/ocsp/!!!", "/ocsp/" + "A" * 5, "/ocsp/%C3%BF", "/ocsp/a b"])
def test_get_that_is_not_base64_is_a_400(ocsp_ca, path):
    response = ocsp_ca.client.simulate_get(path)
    assert response.status_code == 400
    assert response.json["message"].endswith("the OCSP request is not base64.")


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA224(), hashes.SHA256(),
                                       hashes.SHA384(), hashes.SHA512()])
def test_sha1_and_sha2_certids_are_answered_in_kind(ocsp_ca, leaf, algorithm):
    inter = ocsp_ca.authority.intermediates[0]
    result = answer(post(ocsp_ca, request(leaf, inter, algorithm)))
    assert result.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert result.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert result.serial_number == leaf.serial_number
    assert isinstance(result.hash_algorithm, type(algorithm))
    assert (result.issuer_name_hash, result.issuer_key_hash) == issuer_hashes(inter, algorithm)
    inter.public_key().verify(result.signature, result.tbs_response_bytes,
                              ec.ECDSA(hashes.SHA256()))


# -- caching ---------------------------------------------------------------------------------------

def test_identical_requests_cost_one_signature(ocsp_ca, leaf):
    """ECDSA signatures are randomized: byte-identical answers are one signature served again."""
    inter = ocsp_ca.authority.intermediates[0]
    der = request(leaf, inter)
    bodies = {post(ocsp_ca, der).content for _ in range(50)}
    bodies |= {get(ocsp_ca, der).content for _ in range(10)}
    # a nonce does not defeat the cache: it is ignored, and not echoed
    bodies |= {post(ocsp_ca, request(leaf, inter, nonce=bytes([n]) * 16)).content
               for n in range(10)}
    assert len(bodies) == 1
    cached = ocsp.load_der_ocsp_response(bodies.pop())
    assert cached.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert len(cached.extensions) == 0
    # another CertID hash is another answer, signed once
    sha256 = {post(ocsp_ca, request(leaf, inter, hashes.SHA256())).content for _ in range(5)}
    assert len(sha256) == 1 and ocsp.load_der_ocsp_response(sha256.pop()).produced_at_utc \
        >= cached.produced_at_utc


def test_revocation_by_another_process_changes_the_next_answer(stepca_pki, ocsp_config,
                                                               ocsp_ca, leaf):
    inter = ocsp_ca.authority.intermediates[0]
    der = request(leaf, inter)
    good = post(ocsp_ca, der).content
    assert post(ocsp_ca, der).content == good  # cached
    other = TestCA(ocsp_config)  # another worker or the plain-HTTP listener: same database
    try:
        revoke(other, stepca_pki, leaf.serial_number)
    finally:
        other.close()
    revoked = answer(post(ocsp_ca, der))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    assert post(ocsp_ca, der).content == revoked.public_bytes(serialization.Encoding.DER)


def test_cached_answer_is_signed_anew_shortly_before_next_update(ocsp_ca, leaf, clock):
    inter = ocsp_ca.authority.intermediates[0]
    der = request(leaf, inter)
    first = answer(post(ocsp_ca, der))
    assert first.next_update_utc - first.this_update_utc == timedelta(hours=1)
    refresh_at = first.next_update_utc - REFRESH_BEFORE
    clock.now = refresh_at - timedelta(seconds=1)
    assert post(ocsp_ca, der).content == first.public_bytes(serialization.Encoding.DER)
    clock.now = refresh_at
    fresh = answer(post(ocsp_ca, der))
    assert fresh.this_update_utc == refresh_at.replace(microsecond=0)
    assert fresh.next_update_utc == fresh.this_update_utc + timedelta(hours=1)
    assert fresh.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_unknown_serials_are_answered_unknown_and_cached_too(stepca_pki, ocsp_ca, leaf):
    inter = ocsp_ca.authority.intermediates[0]
    stranger = raw_request(cert_id(inter, 4242))
    first = answer(post(ocsp_ca, stranger))
    assert first.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert post(ocsp_ca, stranger).content == first.public_bytes(serialization.Encoding.DER)


def test_answer_cache_is_a_bounded_lru():
    now = utcnow()
    later = now + timedelta(minutes=5)
    cache = AnswerCache(max_entries=2)
    cache.put("a", b"A", later)
    cache.put("b", b"B", later)
    assert cache.get("a", now) == b"A"  # "a" is now the most recently used
    cache.put("c", b"C", later)
    assert len(cache) == 2
    assert cache.get("b", now) is None
    assert (cache.get("a", now), cache.get("c", now)) == (b"A", b"C")
    assert cache.get("a", later) is None  # due: dropped
    assert len(cache) == 1


def test_disabled_responder_is_404(stepca_ca):
    assert stepca_ca.client.simulate_post("/ocsp", body=b"x").status_code == 404
