"""Renewal and rekey, in-process: a certificate whose provisioner was removed from ca.json does
not renew, and a renewal cannot finish after a revocation of its certificate returned. The
real step-ca and `step ca renew` are in test_renewal_e2e.py."""

from __future__ import annotations

import base64
import sqlite3
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stepca import hookimpl
from stepca.errors import Unauthorized
from stepca.jose import jwk_from_key, sign_jwt
from stepca.testing import TestCA, make_csr, make_token
from stepca.timeutil import utcnow

UNAUTHORIZED = "The request lacked necessary authorization to be completed: "
SUBJECT = "svc.example.com"


def rows(ca) -> tuple[int, int, int]:
    return ca.rows()


def spent(ca, token_id: str) -> bool:
    with sqlite3.connect(ca.authority.config.db["dataSource"]) as conn:
        return conn.execute("SELECT 1 FROM used_ott WHERE id = ?", (token_id,)).fetchone() \
            is not None


def issue(ca, token):
    csr, key = make_csr(SUBJECT)
    response = ca.sign(csr, token)
    assert response.status_code == 201, response.text
    return [x509.load_pem_x509_certificate(c.encode()) for c in response.json["certChain"]], key


def renew_token(chain, key, *, jti: str | None = None) -> str:
    now = int(utcnow().timestamp())
    claims = {"aud": "https://localhost:9000/1.0/renew", "iss": "step-ca-client/1.0",
              "sub": SUBJECT, "iat": now, "nbf": now, "exp": now + 300}
    if jti:
        claims["jti"] = jti
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return sign_jwt(claims, key, headers={"x5cInsecure": x5c})


def renew(ca, token):
    return ca.client.simulate_post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})


# -- a removed provisioner ------------------------------------------------------------------------

@pytest.fixture
def second_provisioner():
    """A second JWK provisioner, ``temp``, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwk_from_key(key)
    return {"type": "JWK", "name": "temp", "key": jwk}, key


def test_certificates_of_a_removed_provisioner_do_not_renew(stepca_pki, tmp_path,
                                                           second_provisioner):
    admin = stepca_pki.ca_json["authority"]["provisioners"][0]
    temp, temp_key = second_provisioner
    before = TestCA(stepca_pki.config(tmp_path, provisioners=[admin, temp]))
    (orphan, inter), orphan_key = issue(before, make_token(
        stepca_pki, SUBJECT, issuer="temp", kid=temp["key"]["kid"], key=temp_key))
    (kept, _), kept_key = issue(before, make_token(stepca_pki, SUBJECT))
    before.close()

    # the same database, ca.json without `temp`: a restart after the operator removed it
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=[admin]))
    try:
        written = rows(ca)
        refused = renew(ca, renew_token([orphan, inter], orphan_key, jti="renew-orphan"))
        assert refused.status_code == 401
        assert refused.json["message"] == (f"{UNAUTHORIZED}provisioner not found: 'temp' is no "
                                           "longer configured.")
        assert rows(ca) == written and not spent(ca, "renew-orphan")

        new_key = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(Unauthorized, match="provisioner not found: 'temp'"):
            ca.authority.rekey(orphan, make_csr(SUBJECT, key=new_key)[0])  # mTLS is e2e
        with pytest.raises(Unauthorized, match="provisioner not found: 'temp'"):
            ca.authority.renew(orphan)
        assert rows(ca) == written

        # the provisioner that stayed still renews its certificates
        assert renew(ca, renew_token([kept, inter], kept_key)).status_code == 201
    finally:
        ca.close()


def test_the_provisioner_extension_names_the_provisioner_when_the_record_is_gone(
        stepca_pki, tmp_path, second_provisioner):
    """A lost database (or another CA sharing the intermediate): the certificate's provisioner
    extension still says `temp`, so it is refused too."""
    admin = stepca_pki.ca_json["authority"]["provisioners"][0]
    temp, temp_key = second_provisioner
    before = TestCA(stepca_pki.config(tmp_path / "old", provisioners=[admin, temp]))
    (orphan, inter), orphan_key = issue(before, make_token(
        stepca_pki, SUBJECT, issuer="temp", kid=temp["key"]["kid"], key=temp_key))
    before.close()
    ca = TestCA(stepca_pki.config(tmp_path / "new", provisioners=[admin]))
    try:
        refused = renew(ca, renew_token([orphan, inter], orphan_key))
        assert refused.status_code == 401
        assert "provisioner not found: 'temp' is no longer configured" in refused.json["message"]
        assert rows(ca) == (0, 0, 0)
    finally:
        ca.close()


def test_a_certificate_naming_no_provisioner_still_renews(stepca_pki, stepca_ca):
    """step-ca's no-op provisioner: neither a record nor the extension, e.g. a certificate
    signed offline with the intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    chain = list(stepca_pki.offline_certificate(key.public_key(), SUBJECT))
    response = renew(stepca_ca, renew_token(chain, key))
    assert response.status_code == 201, response.text


# -- the signature check, verified once per certificate ----------------------------------------

def test_a_certificate_verified_once_does_not_vouch_for_a_tampered_copy(stepca_pki, stepca_ca,
                                                                      monkeypatch):
    import stepca.issuance

    issuer = stepca_ca.authority.issuer
    token = make_token(stepca_pki, SUBJECT)
    (leaf, *_), _ = issue(stepca_ca, token)
    issuer.issued_here(leaf)
    issuer.issued_here(leaf)  # the second time from what the first verified
    der = bytearray(leaf.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the signature's last byte: same certificate, a signature that fails
    tampered = x509.load_der_x509_certificate(bytes(der))
    assert tampered.serial_number == leaf.serial_number
    with pytest.raises(Unauthorized):
        issuer.issued_here(tampered)
    offline = stepca_pki.offline_certificate(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                             SUBJECT)[0]
    monkeypatch.setattr(stepca.issuance, "VERIFIED_CACHE_SIZE", 1)
    issuer.issued_here(offline)  # the cache keeps its bound: the oldest entry leaves
    assert list(issuer._verified) == [offline]


# -- renew racing revoke --------------------------------------------------------------------------

class PausedRenewal:
    """Holds a renewal after its early checks (the revocation check among them), until the
    test lets it go."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()

    @hookimpl
    def stepca_authorize_renew(self, certificate):
        self.reached.set()
        assert self.release.wait(30), "the test never released the renewal"


def test_a_renewal_cannot_finish_after_its_certificate_was_revoked(stepca_pki, tmp_path):
    pause = PausedRenewal()
    ca = TestCA(stepca_pki.config(tmp_path), plugins=[pause])
    try:
        chain, key = issue(ca, make_token(stepca_pki, SUBJECT))
        outcome: dict[str, object] = {}

        def renewal() -> None:
            outcome["response"] = renew(ca, renew_token(chain, key, jti="racing-renewal"))

        racer = threading.Thread(target=renewal)
        racer.start()
        assert pause.reached.wait(30), "the renewal never reached its hook"
        revoked = ca.client.simulate_post("/1.0/revoke", json={
            "serial": str(chain[0].serial_number), "reasonCode": 1, "passive": True,
            "ott": make_token(stepca_pki, str(chain[0].serial_number),
                              audience="https://localhost:9000/1.0/revoke")})
        assert revoked.status_code == 200, revoked.text
        written = rows(ca)
        pause.release.set()
        racer.join(30)
        assert not racer.is_alive()

        response = outcome["response"]
        assert response.status_code == 401, response.text
        assert response.json["message"] == f"{UNAUTHORIZED}certificate has been revoked."
        assert rows(ca) == written == (1, 2, 1)  # the sign and revoke tokens, nothing more
        assert not spent(ca, "racing-renewal")
    finally:
        pause.release.set()
        ca.close()
