"""Renewal by token, revocation by token, the CRL and OCSP, in-process (mutual TLS is
covered end to end in test_lifecycle_e2e.py)."""

from __future__ import annotations

import base64
import sqlite3
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from stepca import hookimpl
from stepca.jose import sign_jwt
from stepca.testing import TestCA, make_csr, make_token
from stepca.timeutil import utcnow

UNAUTHORIZED = "The request lacked necessary authorization to be completed: "


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now


def issue(ca, pki, subject="svc.example.com", **extra):
    csr, key = make_csr(subject)
    response = ca.sign(csr, make_token(pki, subject), **extra)
    assert response.status_code == 201, response.text
    chain = [x509.load_pem_x509_certificate(c.encode()) for c in response.json["certChain"]]
    return chain, key


def renew_token(chain, key, *, audience="https://localhost:9000/1.0/renew", lifetime=300,
                now=None, **claims):
    now = int((now or utcnow()).timestamp())
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    payload = {"aud": audience, "iss": "step-ca-client/1.0",
               "sub": chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value,
               "iat": now, "nbf": now, "exp": now + lifetime, "jti": f"renew-{now}-{id(chain)}",
               **claims}
    return sign_jwt(payload, key, headers={"x5cInsecure": x5c})


def renew(ca, token):
    return ca.client.simulate_post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})


def rows(ca, table):
    with sqlite3.connect(ca.authority.config.db["dataSource"]) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_renew_with_token_keeps_identity_and_lifetime(stepca_pki, stepca_ca):
    (old, inter), key = issue(stepca_ca, stepca_pki, notAfter="2h")
    response = renew(stepca_ca, renew_token([old, inter], key))
    assert response.status_code == 201, response.text
    new = x509.load_pem_x509_certificate(response.json["crt"].encode())
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject and new.public_key() == old.public_key()
    assert (new.not_valid_after_utc - new.not_valid_before_utc ==
            old.not_valid_after_utc - old.not_valid_before_utc)
    assert new.not_valid_before_utc >= old.not_valid_before_utc
    for ext in old.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            assert new.extensions.get_extension_for_oid(ext.oid) == ext
    assert rows(stepca_ca, "x509_certs") == 2
    replay = renew(stepca_ca, renew_token([old, inter], key, jti="fixed"))
    assert replay.status_code == 201
    again = renew(stepca_ca, renew_token([old, inter], key, jti="fixed"))
    assert again.status_code == 401 and again.json["message"] == f"{UNAUTHORIZED}token already used."


@pytest.mark.parametrize(("change", "reason"), [
    ({"audience": "https://localhost:9000/1.0/sign"}, "invalid token: wrong audience"),
    ({"sub": "someone-else"}, "invalid token: subject does not match the certificate"),
    ({"iss": "mallory"}, "invalid token: wrong issuer"),
    ({"lifetime": 7200}, "invalid token: a token may be valid for at most 1h0m0s"),
])
def test_renew_token_refusals(stepca_pki, stepca_ca, change, reason):
    (old, inter), key = issue(stepca_ca, stepca_pki)
    response = renew(stepca_ca, renew_token([old, inter], key, **change))
    assert response.status_code == 401
    assert response.json["message"] == f"{UNAUTHORIZED}{reason}."
    assert rows(stepca_ca, "x509_certs") == 1 and rows(stepca_ca, "used_ott") == 1


def test_renew_token_signed_by_another_key(stepca_pki, stepca_ca):
    (old, inter), _ = issue(stepca_ca, stepca_pki)
    _, other_key = make_csr()
    response = renew(stepca_ca, renew_token([old, inter], other_key))
    assert response.status_code == 401
    assert response.json["message"] == f"{UNAUTHORIZED}invalid token: invalid token signature."


def test_certificate_from_another_ca_cannot_renew(stepca_pki, stepca_ca, tmp_path):
    from stepca.testing import make_pki

    other = make_pki(tmp_path / "other", name="Other")
    foreign_ca = TestCA(other.config(tmp_path / "o"))
    (foreign, foreign_inter), key = issue(foreign_ca, other)
    foreign_ca.close()
    response = renew(stepca_ca, renew_token([foreign, foreign_inter], key))
    assert response.status_code == 401
    assert response.json["message"] == (f"{UNAUTHORIZED}certificate chain does not lead to a "
                                        "root of this CA.")


def test_expired_certificate_needs_allow_renewal_after_expiry(stepca_pki, tmp_path):
    clock = Clock()
    entry = dict(stepca_pki.ca_json["authority"]["provisioners"][0])
    ca = TestCA(stepca_pki.config(tmp_path / "a", provisioners=[entry]), clock=clock)
    (old, inter), key = issue(ca, stepca_pki, notAfter="10m")
    clock.now += timedelta(minutes=30)
    refused = renew(ca, renew_token([old, inter], key, now=clock.now))
    assert refused.status_code == 401
    assert refused.json["message"].startswith(f"{UNAUTHORIZED}certificate expired on ")
    ca.close()

    clock = Clock()
    allowed = {**entry, "claims": {"allowRenewalAfterExpiry": True}}
    ca = TestCA(stepca_pki.config(tmp_path / "b", provisioners=[allowed]), clock=clock)
    (old, inter), key = issue(ca, stepca_pki, notAfter="10m")
    clock.now += timedelta(minutes=30)
    response = renew(ca, renew_token([old, inter], key, now=clock.now))
    assert response.status_code == 201, response.text
    ca.close()


def test_disable_renewal(stepca_pki, tmp_path):
    entry = {**stepca_pki.ca_json["authority"]["provisioners"][0],
             "claims": {"disableRenewal": True}}
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=[entry]))
    (old, inter), key = issue(ca, stepca_pki)
    response = renew(ca, renew_token([old, inter], key))
    assert response.status_code == 401
    assert response.json["message"] == (f"{UNAUTHORIZED}renew is disabled for provisioner "
                                        "'admin'.")
    ca.close()


def test_missing_credentials(stepca_ca):
    response = stepca_ca.client.simulate_post("/renew")
    assert response.status_code == 400
    assert response.json["message"] == ("The request could not be completed: missing client "
                                        "certificate.")
    assert stepca_ca.client.simulate_post("/rekey", json={"csr": "x"}).status_code == 400


class Recorder:
    """A plugin registered in-process: vetoes renewal of one subject and records events."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def stepca_authorize_renew(self, certificate):
        cn = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        return "renewal of blocked.example.com is frozen" if cn == "blocked.example.com" else None

    @hookimpl
    def stepca_after_renew(self, old, new):
        self.events.append(("renew", old.serial_number, new.serial_number))

    @hookimpl
    def stepca_after_revoke(self, serial, reason_code):
        self.events.append(("revoke", serial, reason_code))


def test_renewal_hooks(stepca_pki, tmp_path):
    recorder = Recorder()
    ca = TestCA(stepca_pki.config(tmp_path), plugins=[recorder])
    (old, inter), key = issue(ca, stepca_pki)
    assert renew(ca, renew_token([old, inter], key)).status_code == 201
    assert recorder.events[0][:2] == ("renew", old.serial_number)
    (blocked, inter), key = issue(ca, stepca_pki, "blocked.example.com")
    vetoed = renew(ca, renew_token([blocked, inter], key))
    assert vetoed.status_code == 401
    assert vetoed.json["message"] == f"{UNAUTHORIZED}renewal of blocked.example.com is frozen."
    revoke = ca.client.simulate_post("/revoke", json={
        "serial": str(old.serial_number), "reasonCode": 4, "passive": True,
        "ott": make_token(stepca_pki, str(old.serial_number),
                          audience="https://localhost:9000/1.0/revoke")})
    assert revoke.status_code == 200, revoke.text
    assert recorder.events[-1] == ("revoke", old.serial_number, 4)
    ca.close()


def revoke_request(pki, serial, **extra):
    body = {"serial": str(serial), "reasonCode": 1, "reason": "key compromise", "passive": True,
            "ott": make_token(pki, str(serial), audience="https://localhost:9000/1.0/revoke")}
    body.update(extra)
    return body


def test_revoke_by_token_then_renew_refused(stepca_pki, stepca_ca):
    (old, inter), key = issue(stepca_ca, stepca_pki)
    response = stepca_ca.client.simulate_post("/1.0/revoke",
                                              json=revoke_request(stepca_pki, old.serial_number))
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert rows(stepca_ca, "revoked_x509_certs") == 1
    twice = stepca_ca.client.simulate_post("/revoke",
                                           json=revoke_request(stepca_pki, old.serial_number))
    assert twice.status_code == 400
    assert twice.json["message"] == ("The request could not be completed: certificate with "
                                     f"serial number '{old.serial_number}' is already revoked.")
    refused = renew(stepca_ca, renew_token([old, inter], key))
    assert refused.status_code == 401
    assert refused.json["message"] == f"{UNAUTHORIZED}certificate has been revoked."


@pytest.mark.parametrize(("mutate", "status", "message"), [
    (lambda pki, serial: revoke_request(pki, 12345), 404,  # step-ca's generic message
     "The requested resource could not be found. Please see the certificate authority logs for "
     "more info."),
    (lambda pki, serial: revoke_request(pki, serial, ott=make_token(
        pki, "999", audience="https://localhost:9000/1.0/revoke")), 403,
     "The request was forbidden by the certificate authority: request serial number {serial} "
     "and token subject 999 do not match."),
    (lambda pki, serial: revoke_request(pki, serial, ott=make_token(pki, str(serial))), 401,
     f"{UNAUTHORIZED}invalid token: wrong audience."),
    (lambda pki, serial: revoke_request(pki, serial, reasonCode=11), 400,
     "The request could not be completed: reasonCode out of bounds."),
    (lambda pki, serial: revoke_request(pki, serial, reasonCode=-1), 400,
     "The request could not be completed: reasonCode out of bounds."),
    (lambda pki, serial: revoke_request(pki, serial, reasonCode="1"), 400,
     "The request could not be completed: error decoding json."),
    (lambda pki, serial: revoke_request(pki, serial, reasonCode=1.5), 400,
     "The request could not be completed: error decoding json."),
    (lambda pki, serial: revoke_request(pki, "not-a-number"), 400,
     "The request could not be completed: 'not-a-number' is not a valid serial number."),
    (lambda pki, serial: {**revoke_request(pki, serial), "serial": ""}, 400,
     "The request could not be completed: missing serial."),
    (lambda pki, serial: {**revoke_request(pki, serial), "serial": serial}, 400,
     "The request could not be completed: serial must be a string."),
    (lambda pki, serial: {**revoke_request(pki, serial), "serial": "1" * 101}, 400,
     "The request could not be completed: invalid serial number: longer than 100 characters."),
    (lambda pki, serial: {"serial": str(serial), "passive": True}, 400,
     "The request could not be completed: missing ott or client certificate."),
])
def test_revoke_refusals_change_nothing(stepca_pki, stepca_ca, mutate, status, message):
    (old, _), _ = issue(stepca_ca, stepca_pki)
    spent = rows(stepca_ca, "used_ott")
    response = stepca_ca.client.simulate_post("/revoke", json=mutate(stepca_pki,
                                                                     old.serial_number))
    assert response.status_code == status
    assert response.json["message"] == message.format(serial=old.serial_number)
    assert rows(stepca_ca, "revoked_x509_certs") == 0
    assert rows(stepca_ca, "used_ott") == spent


def test_revoke_accepts_hex_serial(stepca_pki, stepca_ca):
    (old, _), _ = issue(stepca_ca, stepca_pki)
    body = {**revoke_request(stepca_pki, old.serial_number), "serial": hex(old.serial_number)}
    assert stepca_ca.client.simulate_post("/revoke", json=body).status_code == 200


@pytest.fixture
def active_ca(stepca_pki, tmp_path):
    ca = TestCA(stepca_pki.config(tmp_path, crl={"enabled": True, "cacheDuration": "1h"},
                                  ocsp={"enabled": True}))
    yield ca
    ca.close()


@pytest.mark.parametrize(("top", "ocsp_url", "crl_url"), [
    ({"address": ":443"}, "https://localhost/ocsp", "https://localhost/1.0/crl"),
    ({"address": "127.0.0.1:8443", "dnsNames": ["::1"]}, "https://[::1]:8443/ocsp",
     "https://[::1]/1.0/crl"),
    ({"address": ":8443", "insecureAddress": ":80"}, "http://localhost/ocsp",
     "https://localhost/1.0/crl"),
    ({"address": ":8443", "insecureAddress": "127.0.0.1:8080"}, "http://localhost:8080/ocsp",
     "https://localhost/1.0/crl"),
])
def test_revocation_url_defaults(stepca_pki, tmp_path, top, ocsp_url, crl_url):
    # OCSP: the listener that answers it; the CRL: step-ca's default, port 443 assumed
    from stepca.config import Config

    config = Config.load(stepca_pki.config(tmp_path, **top))
    assert (config.ocsp.url, config.crl.idp_url) == (ocsp_url, crl_url)


def test_crl_lists_revocations_and_grows_its_number(stepca_pki, active_ca):
    first = active_ca.client.simulate_get("/crl")
    assert first.status_code == 200 and first.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(first.content)
    inter = active_ca.authority.intermediates[0]
    assert crl.is_signature_valid(inter.public_key()) and crl.issuer == inter.subject
    assert len(crl) == 0
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and idp.value.full_name[0].value == "https://localhost/1.0/crl"
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=1)

    (leaf, _), _ = issue(active_ca, stepca_pki)
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == "https://localhost/1.0/crl"  # step-ca's default IDP
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == "https://localhost:9000/ocsp"  # the CA's own port
    assert active_ca.client.simulate_post(
        "/revoke", json=revoke_request(stepca_pki, leaf.serial_number)).status_code == 200
    pem = active_ca.client.simulate_get("/1.0/crl", params={"pem": ""})
    assert pem.headers["content-type"] == "application/x-pem-file"
    after = x509.load_pem_x509_crl(pem.content)
    entry = after.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    assert after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1


def test_reason_code_7_is_accepted_stored_and_published_without_a_reason(stepca_pki, active_ca):
    # step-ca takes any reasonCode from 0 to 10; RFC 5280 leaves 7 unassigned, so the CRL and
    # OCSP say "revoked" with no reason (which means unspecified) while the store keeps 7.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    (leaf, inter), _ = issue(active_ca, stepca_pki)
    response = active_ca.client.simulate_post(
        "/revoke", json=revoke_request(stepca_pki, leaf.serial_number, reasonCode=7))
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert active_ca.authority.revocations.revocation(leaf.serial_number).reason_code == 7
    crl = x509.load_der_x509_crl(active_ca.client.simulate_get("/crl").content)
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None and len(entry.extensions) == 0
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, inter, hashes.SHA1()).build()
    answer = ocsp.load_der_ocsp_response(active_ca.client.simulate_post(
        "/ocsp", body=request.public_bytes(serialization.Encoding.DER)).content)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is None


def test_crl_disabled_is_404(stepca_ca):
    assert stepca_ca.client.simulate_get("/crl").status_code == 404


def ocsp_request(leaf, issuer, nonce=None):
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_ocsp_get_request_whose_base64_ends_with_a_slash(stepca_pki, active_ca):
    (leaf, inter), _ = issue(active_ca, stepca_pki)
    for counter in range(10_000):  # a nonce that makes the encoding end with "/"
        request = ocsp_request(leaf, inter, counter.to_bytes(8 + counter % 3, "big"))
        encoded = base64.b64encode(request).decode()
        if encoded.endswith("/"):
            break
    else:
        pytest.fail("no request encoding ends with '/'")
    answer = ocsp.load_der_ocsp_response(active_ca.client.simulate_get(f"/ocsp/{encoded}").content)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_ocsp_good_revoked_unknown(stepca_pki, active_ca):
    (leaf, inter), _ = issue(active_ca, stepca_pki)
    post = active_ca.client.simulate_post("/ocsp", body=ocsp_request(leaf, inter, b"n" * 16),
                                          headers={"Content-Type": "application/ocsp-request"})
    answer = ocsp.load_der_ocsp_response(post.content)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert len(answer.extensions) == 0  # the nonce is ignored, so answers can be cached (0013)
    inter.public_key().verify(answer.signature, answer.tbs_response_bytes,
                              __import__("cryptography.hazmat.primitives.asymmetric.ec",
                                         fromlist=["ECDSA"]).ECDSA(hashes.SHA256()))
    active_ca.client.simulate_post("/revoke", json=revoke_request(stepca_pki, leaf.serial_number))
    encoded = base64.b64encode(ocsp_request(leaf, inter)).decode()
    revoked = ocsp.load_der_ocsp_response(active_ca.client.simulate_get(f"/ocsp/{encoded}").content)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise

    stranger = x509.load_pem_x509_certificate(make_stranger(stepca_pki, inter).encode())
    unknown = ocsp.load_der_ocsp_response(active_ca.client.simulate_post(
        "/ocsp", body=ocsp_request(stranger, inter)).content)
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    malformed = ocsp.load_der_ocsp_response(active_ca.client.simulate_post(
        "/ocsp", body=b"garbage").content)
    assert malformed.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def make_stranger(pki, inter):
    """A certificate signed by our intermediate but never recorded (as if the db were lost)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from stepca.x509util import load_private_key

    key = load_private_key((pki.steppath / "secrets" / "intermediate_ca_key").read_bytes(),
                           pki.password)
    subject_key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject)
            .public_key(subject_key.public_key()).serial_number(424242)
            .not_valid_before(now).not_valid_after(now + timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_crl_is_regenerated_before_it_goes_stale(stepca_pki, tmp_path):
    clock = Clock()
    ca = TestCA(stepca_pki.config(tmp_path, crl={"enabled": True, "cacheDuration": "1h",
                                                 "renewPeriod": "40m"}), clock=clock)
    try:
        first = x509.load_der_x509_crl(ca.client.simulate_get("/crl").content)
        clock.now += timedelta(minutes=30)
        same = x509.load_der_x509_crl(ca.client.simulate_get("/crl").content)
        assert same.last_update_utc == first.last_update_utc
        clock.now += timedelta(minutes=15)  # past renewPeriod, before nextUpdate
        fresh = x509.load_der_x509_crl(ca.client.simulate_get("/crl").content)
        number = lambda c: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
        assert number(fresh) == number(first) + 1
        assert fresh.next_update_utc > first.next_update_utc
    finally:
        ca.close()


def test_atomic_write_leaves_the_old_file_when_it_fails(tmp_path):
    from stepca.x509util import write_private

    target = tmp_path / "foo.crt"
    write_private(target, b"old")
    blocked = tmp_path / "dir.crt"
    blocked.mkdir()  # renaming a file over a directory fails after the data was written
    with pytest.raises(OSError):
        write_private(blocked, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.crt", "foo.crt"]
    assert target.stat().st_mode & 0o777 == 0o600
