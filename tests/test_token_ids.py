"""A token without `jti` is spent under the hash of its signing input (protected header and
payload), so the twin of its ECDSA signature, (r, n - s), is the same token: refused with 401
"token already used" on /sign, /revoke and x5c renewal, writing nothing."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from stepca.jose import VerifyingKey, b64url_decode, b64url_encode, parse_unverified, sign_jwt
from stepca.provisioner import token_id_of
from stepca.testing import make_csr, make_token
from stepca.timeutil import utcnow

UNAUTHORIZED = "The request lacked necessary authorization to be completed: "
REVOKE_AUDIENCE = "https://localhost:9000/1.0/revoke"
# the order n of P-256's base point (SEC 2, secp256r1)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def twin(token: str) -> str:
    """The same ES256 token with its signature (r, s) rewritten as (r, n - s), which verifies
    too: what anyone who saw the token can make without the key."""
    signing_input, _, signature = token.rpartition(".")
    raw = b64url_decode(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return f"{signing_input}.{b64url_encode(r + (P256_ORDER - s).to_bytes(32, 'big'))}"


def assert_valid_twin(token: str, public_key) -> str:
    other = twin(token)
    assert other != token
    VerifyingKey(public_key, "ES256").verify(parse_unverified(other))  # a valid signature
    return other


def rows(ca) -> tuple[int, int, int]:
    return ca.rows()


def issue(ca, pki, subject="foo.example.com"):
    csr, key = make_csr(subject)
    response = ca.sign(csr, make_token(pki, subject))
    assert response.status_code == 201, response.text
    return [x509.load_pem_x509_certificate(c.encode()) for c in response.json["certChain"]], key


def test_the_id_covers_header_and_payload_not_the_signature(stepca_pki):
    token = make_token(stepca_pki, omit=["jti"])
    other = assert_valid_twin(token, stepca_pki.provisioner_key.public_key())
    header_and_payload = token.rpartition(".")[0]
    expected = hashlib.sha256(header_and_payload.encode()).hexdigest()
    assert token_id_of(parse_unverified(token)) == token_id_of(parse_unverified(other)) == expected
    assert parse_unverified(token).signing_input == header_and_payload
    with_jti = parse_unverified(make_token(stepca_pki, jti="abc"))
    assert token_id_of(with_jti) == "abc"


def test_sign_refuses_the_twin_of_a_token_without_jti(stepca_pki, stepca_ca):
    token = make_token(stepca_pki, omit=["jti"])
    other = assert_valid_twin(token, stepca_pki.provisioner_key.public_key())
    assert stepca_ca.sign(make_csr()[0], token).status_code == 201
    refused = stepca_ca.sign(make_csr()[0], other)
    assert refused.status_code == 401
    assert refused.json["message"] == f"{UNAUTHORIZED}token already used."
    assert rows(stepca_ca) == (1, 1, 0)


def test_revoke_refuses_the_twin_of_a_token_without_jti(stepca_pki, stepca_ca):
    (leaf, _), _ = issue(stepca_ca, stepca_pki)
    serial = str(leaf.serial_number)
    token = make_token(stepca_pki, serial, audience=REVOKE_AUDIENCE, omit=["jti"])
    other = assert_valid_twin(token, stepca_pki.provisioner_key.public_key())
    body = {"serial": serial, "reasonCode": 1, "passive": True}
    assert stepca_ca.client.simulate_post("/revoke", json={**body, "ott": token}).status_code \
        == 200
    written = rows(stepca_ca)
    refused = stepca_ca.client.simulate_post("/revoke", json={**body, "ott": other})
    assert refused.status_code == 401
    assert refused.json["message"] == f"{UNAUTHORIZED}token already used."
    assert rows(stepca_ca) == written == (1, 2, 1)


def test_x5c_renewal_refuses_the_twin_of_a_token_without_jti(stepca_pki, stepca_ca):
    chain, key = issue(stepca_ca, stepca_pki)
    now = int(utcnow().timestamp())
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    token = sign_jwt({"aud": "https://localhost:9000/1.0/renew", "iss": "step-ca-client/1.0",
                      "sub": "foo.example.com", "iat": now, "nbf": now, "exp": now + 300},
                     key, headers={"x5cInsecure": x5c})
    other = assert_valid_twin(token, key.public_key())

    def renew(bearer):
        return stepca_ca.client.simulate_post("/1.0/renew",
                                              headers={"Authorization": f"Bearer {bearer}"})

    assert renew(token).status_code == 201
    written = rows(stepca_ca)
    refused = renew(other)
    assert refused.status_code == 401
    assert refused.json["message"] == f"{UNAUTHORIZED}token already used."
    assert rows(stepca_ca) == written == (2, 2, 0)
