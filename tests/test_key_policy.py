"""The one key policy (stepca.key_policy) on /sign, rekey and renew: EC P-256/P-384/P-521,
Ed25519 and RSA of 2048 to 8192 bits are certified; every other key is refused with 403 before
anything is spent or written."""

from __future__ import annotations

import base64
import json
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.utils import CryptographyDeprecationWarning
from stepca import _der
from stepca.errors import Forbidden
from stepca.jose import b64url_encode
from stepca.key_policy import check_public_key, public_key_of
from stepca.provisioner import KeyValidator
from stepca.testing import make_csr, make_token
from stepca.timeutil import utcnow

FORBIDDEN = "The request was forbidden by the certificate authority: "
ALLOWED = "the CA certifies EC P-256, P-384 or P-521, Ed25519, or RSA of 2048 to 8192 bits"
SUBJECT = "foo.example.com"


def dsa_private_key():
    """A DSA-2048 key: clients may still send one, though cryptography >= 51 deprecates DSA."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return dsa.generate_private_key(2048)  # deprecated on purpose


def counts(ca) -> tuple[int, int, int]:
    return ca.rows()


def spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def csr_carrying(key_info: bytes) -> str:
    """A CSR for SUBJECT whose SubjectPublicKeyInfo is ``key_info``, signed by another (P-256)
    key: for keys that cannot sign (X25519, X448) or that we only have the public half of. The
    policy must refuse such a key before it looks at the signature."""
    pem, signer = make_csr(SUBJECT)
    request_info = x509.load_pem_x509_csr(pem.encode()).tbs_certrequest_bytes
    _, body, _ = _der.read(request_info)
    fields = []
    while body:
        _, _, rest = _der.read(body)
        fields.append(body[:len(body) - len(rest)])
        body = rest
    version, subject, _, attributes = fields
    info = _der.sequence(version, subject, key_info, attributes)
    signature = signer.sign(info, ec.ECDSA(hashes.SHA256()))
    der = _der.sequence(info, _der.sequence(_der.oid("1.2.840.10045.4.3.2")),
                        _der.tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()


def rsa_public(bits: int) -> rsa.RSAPublicKey:
    """An RSA public key of exactly ``bits`` bits, without the cost of finding primes (the
    policy reads the size only)."""
    return rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()


def signed_csr(private_key) -> str:
    return make_csr(SUBJECT, key=private_key)[0]


# Each refused kind: how to make its CSR, and the reason the CA gives.
REFUSED = {
    "RSA-1024": (lambda: signed_csr(rsa.generate_private_key(65537, 1024)),
                 "certificate request RSA key must be at least 2048 bits (256 bytes)"),
    "RSA-8200": (lambda: csr_carrying(spki(rsa_public(8200))),
                 "certificate request RSA key must be at most 8192 bits (1024 bytes)"),
    "DSA-2048": (lambda: signed_csr(dsa_private_key()),
                 f"certificate request key of type DSA is not supported; {ALLOWED}"),
    "P-192": (lambda: signed_csr(ec.generate_private_key(ec.SECP192R1())),
              f"certificate request key is on the elliptic curve secp192r1; {ALLOWED}"),
    "P-224": (lambda: signed_csr(ec.generate_private_key(ec.SECP224R1())),
              f"certificate request key is on the elliptic curve secp224r1; {ALLOWED}"),
    "secp256k1": (lambda: signed_csr(ec.generate_private_key(ec.SECP256K1())),
                  f"certificate request key is on the elliptic curve secp256k1; {ALLOWED}"),
    "brainpoolP256r1": (lambda: signed_csr(ec.generate_private_key(ec.BrainpoolP256R1())),
                        "certificate request key is on the elliptic curve brainpoolP256r1; "
                        f"{ALLOWED}"),
    "Ed448": (lambda: signed_csr(ed448.Ed448PrivateKey.generate()),
              f"certificate request key of type Ed448 is not supported; {ALLOWED}"),
    "X25519": (lambda: csr_carrying(spki(x25519.X25519PrivateKey.generate().public_key())),
               f"certificate request key of type X25519 is not supported; {ALLOWED}"),
    "X448": (lambda: csr_carrying(spki(x448.X448PrivateKey.generate().public_key())),
             f"certificate request key of type X448 is not supported; {ALLOWED}"),
    # GOST R 34.10-2001: an algorithm cryptography cannot load at all
    "unknown algorithm": (lambda: csr_carrying(_der.sequence(
        _der.sequence(_der.oid("1.2.643.2.2.19")), _der.tlv(0x03, b"\x00" + b"\x04" * 65))),
        f"certificate request key is of an unknown type or malformed; {ALLOWED}"),
    "P-256 point off the curve": (lambda: csr_carrying(_der.sequence(
        _der.sequence(_der.oid("1.2.840.10045.2.1"), _der.oid("1.2.840.10045.3.1.7")),
        _der.tlv(0x03, b"\x00\x04" + b"\x01" * 64))),
        f"certificate request key is of an unknown type or malformed; {ALLOWED}"),
}

ACCEPTED = {
    "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
    "RSA-3072": lambda: rsa.generate_private_key(65537, 3072),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_sign_refuses_keys_outside_the_policy(stepca_pki, stepca_ca, kind):
    make, reason = REFUSED[kind]
    token = make_token(stepca_pki, SUBJECT)
    response = stepca_ca.sign(make(), token)
    assert response.status_code == 403, response.text
    assert response.json == {"status": 403, "message": f"{FORBIDDEN}{reason}."}
    assert counts(stepca_ca) == (0, 0, 0), "a refused request wrote to the database"
    # the token was not spent: it still buys a certificate for an allowed key
    assert stepca_ca.sign(make_csr(SUBJECT)[0], token).status_code == 201
    assert counts(stepca_ca) == (1, 1, 0)


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_sign_accepts_the_policy_keys(stepca_pki, stepca_ca, kind):
    key = ACCEPTED[kind]()
    response = stepca_ca.sign(signed_csr(key), make_token(stepca_pki, SUBJECT))
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    assert cert.public_key() == key.public_key()


def issue(ca, pki):
    response = ca.sign(make_csr(SUBJECT)[0], make_token(pki, SUBJECT))
    assert response.status_code == 201, response.text
    return x509.load_pem_x509_certificate(response.json["crt"].encode())


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_rekey_refuses_keys_outside_the_policy(stepca_pki, stepca_ca, kind):
    # In-process through the Authority: /rekey authenticates by mutual TLS, which the real
    # step-ca does in test_removed_provisioner_e2e.py::test_rekey_refuses_a_p192_key.
    make, reason = REFUSED[kind]
    cert = issue(stepca_ca, stepca_pki)
    before = counts(stepca_ca)
    with pytest.raises(Forbidden) as refused:
        stepca_ca.authority.rekey(cert, make())
    assert refused.value.reason == reason
    assert counts(stepca_ca) == before


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_rekey_accepts_the_policy_keys(stepca_pki, stepca_ca, kind):
    cert = issue(stepca_ca, stepca_pki)
    key = ACCEPTED[kind]()
    new = stepca_ca.authority.rekey(cert, signed_csr(key)).certificate
    assert new.public_key() == key.public_key()
    assert new.subject == cert.subject


def test_renewal_with_a_new_key_applies_the_policy(stepca_pki, stepca_ca):
    """Authority.renew(public_key=...) checks the key itself, whoever hands it one."""
    cert = issue(stepca_ca, stepca_pki)
    before = counts(stepca_ca)
    with pytest.raises(Forbidden, match="elliptic curve secp192r1"):
        stepca_ca.authority.renew(cert, public_key=ec.generate_private_key(ec.SECP192R1())
                                  .public_key())
    assert counts(stepca_ca) == before
    key = ec.generate_private_key(ec.SECP384R1())
    assert stepca_ca.authority.renew(cert, public_key=key.public_key()).certificate \
        .public_key() == key.public_key()


WEAK_CERTIFICATE_KEYS = {
    "P-192": (lambda: ec.generate_private_key(ec.SECP192R1()).public_key(),
              f"certificate key is on the elliptic curve secp192r1; {ALLOWED}"),
    "secp256k1": (lambda: ec.generate_private_key(ec.SECP256K1()).public_key(),
                  f"certificate key is on the elliptic curve secp256k1; {ALLOWED}"),
    "DSA-2048": (lambda: dsa_private_key().public_key(),
                 f"certificate key of type DSA is not supported; {ALLOWED}"),
    "Ed448": (lambda: ed448.Ed448PrivateKey.generate().public_key(),
              f"certificate key of type Ed448 is not supported; {ALLOWED}"),
    "RSA-1024": (lambda: rsa.generate_private_key(65537, 1024).public_key(),
                 "certificate RSA key must be at least 2048 bits (256 bytes)"),
}


@pytest.mark.parametrize("kind", sorted(WEAK_CERTIFICATE_KEYS))
def test_renewal_refuses_a_certificate_whose_key_is_outside_the_policy(stepca_pki, stepca_ca,
                                                                       kind):
    make, reason = WEAK_CERTIFICATE_KEYS[kind]
    weak, intermediate = stepca_pki.offline_certificate(make(), SUBJECT)
    with pytest.raises(Forbidden) as refused:  # mutual TLS: the Authority gets the certificate
        stepca_ca.authority.renew(weak)
    assert refused.value.reason == reason
    # an x5cInsecure token (its signature is never reached: a 500 before, for keys JOSE
    # cannot name)
    now = int(utcnow().timestamp())
    chain = [weak, intermediate]
    header = {"alg": "ES256", "typ": "JWT", "x5cInsecure": [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]}
    claims = {"aud": "https://localhost:9000/1.0/renew", "iss": "step-ca-client/1.0",
              "sub": SUBJECT, "iat": now, "nbf": now, "exp": now + 300}
    token = ".".join(b64url_encode(json.dumps(part).encode()) for part in (header, claims)) + \
        "." + b64url_encode(b"\x01" * 64)
    response = stepca_ca.client.simulate_post("/1.0/renew",
                                              headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    assert response.json["message"] == f"{FORBIDDEN}{reason}."
    assert counts(stepca_ca) == (0, 0, 0)


@pytest.mark.parametrize(("bits", "allowed"), [(2047, False), (2048, True), (8192, True),
                                               (8193, False)])
def test_rsa_size_bounds(bits, allowed):
    key = rsa_public(bits)
    assert key.key_size == bits
    if allowed:
        check_public_key(key)
    else:
        with pytest.raises(Forbidden):
            check_public_key(key)


def test_key_validator_is_the_same_policy_and_may_only_raise_the_rsa_floor():
    """Third-party provisioners keep KeyValidator: it refuses what the policy refuses, and
    ``min_rsa_bits`` demands more but never less."""
    for kind, (make, reason) in REFUSED.items():
        with pytest.raises(Forbidden) as refused:
            KeyValidator()(x509.load_pem_x509_csr(make().encode()))
        assert refused.value.reason == reason, kind
    rsa_2048 = x509.load_pem_x509_csr(signed_csr(rsa.generate_private_key(65537, 2048)).encode())
    KeyValidator()(rsa_2048)
    with pytest.raises(Forbidden, match="at least 3072 bits"):
        KeyValidator(min_rsa_bits=3072)(rsa_2048)
    KeyValidator(min_rsa_bits=1024)(rsa_2048)
    with pytest.raises(Forbidden, match="at least 2048 bits"):
        KeyValidator(min_rsa_bits=1024)(x509.load_pem_x509_csr(REFUSED["RSA-1024"][0]().encode()))


def test_dsa_is_recognised_by_the_key_algorithm_not_by_bytes_elsewhere():
    """DSA keys are refused before cryptography loads them (it warns on each); the DSA OID
    elsewhere in a request (here as a subject attribute type) does not make its key DSA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.ObjectIdentifier("1.2.840.10040.4.1"), "x")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    assert isinstance(public_key_of(csr), ec.EllipticCurvePublicKey)
    dsa_csr = x509.load_pem_x509_csr(REFUSED["DSA-2048"][0]().encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Forbidden, match="key of type DSA is not supported"):
            public_key_of(dsa_csr)
