"""stepca.jose against an independent implementation (joserfc) in both directions."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwe, jws
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from stepca import jose


def test_pbes2_jwe_interoperates_with_joserfc():
    # joserfc caps p2c at 300,000, so the cross-check runs at 100,000; 600,000 is our default.
    secret = OctKey.import_key(b"correct horse battery staple")
    ours = jose.encrypt_pbes2(b'{"kty":"EC"}', b"correct horse battery staple", iterations=100_000)
    theirs = jwe.decrypt_compact(ours, secret, algorithms=["PBES2-HS256+A128KW", "A256GCM"])
    assert theirs.plaintext == b'{"kty":"EC"}' and theirs.protected["cty"] == "jwk+json"
    made_there = jwe.encrypt_compact({"alg": "PBES2-HS256+A128KW", "enc": "A256GCM",
                                      "p2c": 100_000}, b"payload", secret,
                                     algorithms=["PBES2-HS256+A128KW", "A256GCM"])
    assert jose.decrypt_pbes2(made_there, b"correct horse battery staple") == b"payload"
    with pytest.raises(ValueError, match="wrong password"):
        jose.decrypt_pbes2(made_there, b"wrong")


def test_default_iterations_are_steps():
    header = json.loads(jose.b64url_decode(jose.encrypt_pbes2(b"x", b"pw").split(".")[0]))
    assert header["p2c"] == 600_000 and len(jose.b64url_decode(header["p2s"])) == 16


@pytest.mark.parametrize("bad", ["a.b.c.d", "x" * 10, "e30.AAAA.AAAA.AAAA.AAAA"])
def test_malformed_jwe(bad):
    with pytest.raises(ValueError):
        jose.decrypt_pbes2(bad, b"pw")


@pytest.mark.parametrize(("key", "alg", "importer"), [
    (ec.generate_private_key(ec.SECP256R1()), "ES256", ECKey),
    (ec.generate_private_key(ec.SECP384R1()), "ES384", ECKey),
    (rsa.generate_private_key(65537, 2048), "RS256", RSAKey),
    (ec.generate_private_key(ec.SECP521R1()), "ES512", ECKey),
    (rsa.generate_private_key(65537, 2048), "PS256", RSAKey),
    (rsa.generate_private_key(65537, 2048), "RS512", RSAKey),
])
def test_jws_both_ways(key, alg, importer):
    token = jose.sign_jwt({"sub": "a"}, key, alg=alg, headers={"kid": "k"})
    jws.deserialize_compact(token, importer.import_key(key.public_key()), algorithms=[alg])
    theirs = jws.serialize_compact({"alg": alg}, b'{"sub":"b"}', importer.import_key(key),
                                   algorithms=[alg])
    jose.VerifyingKey(key.public_key(), alg).verify(jose.parse_unverified(theirs))


def test_eddsa_verified_by_joserfc():
    import warnings

    key = ed25519.Ed25519PrivateKey.generate()
    token = jose.sign_jwt({"sub": "a"}, key)
    assert jose.parse_unverified(token).alg == "EdDSA"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc deprecates the name "EdDSA" (RFC 9864)
        jws.deserialize_compact(token, OKPKey.import_key(key.public_key()), algorithms=["EdDSA"])


def test_thumbprint_is_rfc7638():
    # RFC 7638 section 3.1's example key and thumbprint
    key = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29", "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh"
        "AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")}
    assert jose.thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_verifying_key_refuses_mismatched_algorithms():
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(jose.SignatureError):
        jose.VerifyingKey(key.public_key(), "RS256")
    with pytest.raises(jose.SignatureError):
        jose.VerifyingKey(key.public_key(), "HS256")


def _with_signature(token: str, signature: bytes | str) -> jose.Token:
    head, payload, _ = token.split(".")
    encoded = signature if isinstance(signature, str) else jose.b64url_encode(signature)
    return jose.parse_unverified(f"{head}.{payload}.{encoded}")


def test_verifying_key_refuses_tampered_and_reencoded_signatures():
    key = ec.generate_private_key(ec.SECP256R1())
    verifier = jose.VerifyingKey(key.public_key(), "ES256")
    token = jose.sign_jwt({"sub": "a"}, key, headers={"kid": "k"})
    verifier.verify(jose.parse_unverified(token))
    signature = jose.b64url_decode(token.rsplit(".", 1)[1])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    der_encoded = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))  # not R || S
    encoded = token.rsplit(".", 1)[1]
    # 64 bytes take 86 characters whose last carries 2 unused bits: another spelling, same bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = encoded[:-1] + alphabet[alphabet.index(encoded[-1]) ^ 1]
    assert jose.b64url_decode(respelled) == signature
    for bad in (flipped, der_encoded, signature[:-1], b"", respelled, encoded + "="):
        with pytest.raises(jose.SignatureError):
            verifier.verify(_with_signature(token, bad))
    with pytest.raises(jose.SignatureError, match="does not match"):
        verifier.verify(jose.parse_unverified(jose.sign_jwt(
            {"sub": "a"}, rsa.generate_private_key(65537, 2048), alg="RS256")))
