"""The one JOSE API of stepca.

JWS/JWT go through python-jose (the design card's choice) for the algorithms it has and
through joserfc for EdDSA and PS*. The password-encrypted provisioner keys step uses
(PBES2-HS256+A128KW with A256GCM and 600,000 iterations) are built from ``cryptography``
primitives, because joserfc refuses more than 300,000 iterations and python-jose has no PBES2
(see docs/decisions/0002-jose.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from jose import jwk as jose_jwk
from jose import jws as jose_jws
from jose.exceptions import JOSEError
from joserfc import jws as rfc_jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

__all__ = [
    "JOSEFormatError",
    "SignatureError",
    "Token",
    "b64url_decode",
    "b64url_encode",
    "decrypt_pbes2",
    "default_alg",
    "encrypt_pbes2",
    "jwk_from_key",
    "key_from_jwk",
    "parse_unverified",
    "public_jwk",
    "sign_jwt",
    "thumbprint",
    "VerifyingKey",
]

PBES2_ALG = "PBES2-HS256+A128KW"
PBES2_ENC = "A256GCM"
PBES2_ITERATIONS = 600_000
MAX_PBES2_ITERATIONS = 10_000_000  # decrypting is client-side; still refuse absurd work factors
MAX_TOKEN_BYTES = 16 * 1024

_PYTHON_JOSE_ALGS = {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512"}
_JOSERFC_ALGS = {"PS256", "PS384", "PS512"}
SIGNING_ALGS = _PYTHON_JOSE_ALGS | _JOSERFC_ALGS | {"EdDSA"}


class JOSEFormatError(ValueError):
    """The input is not a well-formed JOSE object."""


class SignatureError(ValueError):
    """A signature did not verify, or its algorithm does not fit the key."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JOSEFormatError("invalid base64url") from exc


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


# -- keys ------------------------------------------------------------------------------------------

def _rfc_key(key: Any) -> Any:
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return ECKey.import_key(key)
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return RSAKey.import_key(key)
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return OKPKey.import_key(key)
    raise TypeError(f"unsupported key type {type(key).__name__}")


def jwk_from_key(key: Any, *, kid: str | None = None, alg: str | None = None,
                 use: str | None = "sig", private: bool = False) -> dict[str, Any]:
    """A JWK dict for a ``cryptography`` key; ``kid`` defaults to the RFC 7638 thumbprint."""
    data = dict(_rfc_key(key).as_dict(private=private))
    for drop in ("kid", "alg", "use"):
        data.pop(drop, None)
    data["kid"] = kid or thumbprint(data)
    if alg or default_alg(data):
        data["alg"] = alg or default_alg(data)
    if use:
        data["use"] = use
    return data


def key_from_jwk(data: dict[str, Any]) -> Any:
    """The ``cryptography`` key (private if the JWK has private members) of a JWK dict."""
    try:
        imported = JWKRegistry.import_key(dict(data))
        return imported.private_key or imported.public_key
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise JOSEFormatError(f"invalid JWK: {exc}") from exc


def public_jwk(data: dict[str, Any]) -> dict[str, Any]:
    private_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    return {k: v for k, v in data.items() if k not in private_members}


def thumbprint(data: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: step's default ``kid``."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                "OKP": ("crv", "kty", "x"), "oct": ("k", "kty")}
    try:
        members = {name: data[name] for name in required[data["kty"]]}
    except KeyError as exc:
        raise JOSEFormatError(f"JWK lacks a member for its thumbprint: {exc}") from exc
    return b64url_encode(hashlib.sha256(_canonical(members)).digest())


def default_alg(data: dict[str, Any]) -> str | None:
    if data.get("alg"):
        return str(data["alg"])
    kty, crv = data.get("kty"), data.get("crv")
    if kty == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(crv))
    if kty == "RSA":
        return "RS256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    return None


def _alg_fits_key(alg: str, key: Any) -> bool:
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        expected = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        return expected.get(key.curve.name) == alg
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return alg in {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return alg == "EdDSA"
    return False


# -- JWS / JWT -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    """A compact JWS split and decoded, its signature not yet checked."""

    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))


def parse_unverified(raw: str) -> Token:
    """Split and decode a compact JWT without verifying it (for routing and inspection only)."""
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_BYTES:
        raise JOSEFormatError("token is not a string of at most 16 KiB")
    parts = raw.strip().split(".")
    if len(parts) != 3:
        raise JOSEFormatError("token is not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JOSEFormatError("token header or payload is not base64url JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JOSEFormatError("token header and payload must be JSON objects")
    return Token(raw=raw.strip(), header=header, claims=claims)


def sign_jwt(claims: dict[str, Any], key: Any, *, alg: str | None = None,
             headers: dict[str, Any] | None = None) -> str:
    """Sign ``claims`` as a compact JWT with a ``cryptography`` private key."""
    alg = alg or default_alg(jwk_from_key(key, private=False))
    if alg not in SIGNING_ALGS or not _alg_fits_key(alg, key):
        raise SignatureError(f"algorithm {alg} does not fit the key")
    header = {"alg": alg, "typ": "JWT", **(headers or {})}
    payload = _canonical(claims)
    if alg in _PYTHON_JOSE_ALGS:
        extra = {k: v for k, v in header.items() if k != "alg"}
        return jose_jws.sign(payload, jose_jwk.construct(key, alg), headers=extra, algorithm=alg)
    if alg == "EdDSA":
        # joserfc warns on "EdDSA" (RFC 9864) but step still uses it; Ed25519 is one call.
        signing_input = f"{b64url_encode(_canonical(header))}.{b64url_encode(payload)}"
        return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"
    return rfc_jws.serialize_compact(header, payload, _rfc_key(key), algorithms=[alg])


class VerifyingKey:
    """A public key parsed once and reused for every signature it checks (the hot path)."""

    def __init__(self, key: Any, alg: str) -> None:
        if alg not in SIGNING_ALGS or not _alg_fits_key(alg, key):
            raise SignatureError(f"algorithm {alg} does not fit the key")
        self.alg = alg
        self._key = key
        if alg in _PYTHON_JOSE_ALGS:
            self._jose_key = jose_jwk.construct(key, alg)
        elif alg in _JOSERFC_ALGS:
            self._rfc_key = _rfc_key(key)

    def verify(self, token: Token) -> None:
        """Raise ``SignatureError`` unless ``token`` carries this key's algorithm and signature."""
        if token.alg != self.alg:
            raise SignatureError(f"token algorithm {token.alg or 'none'} does not match the key's "
                                 f"{self.alg}")
        try:
            if self.alg in _PYTHON_JOSE_ALGS:
                jose_jws.verify(token.raw, self._jose_key, algorithms=[self.alg])
            elif self.alg == "EdDSA":
                signing_input, _, signature = token.raw.rpartition(".")
                self._key.verify(b64url_decode(signature), signing_input.encode("ascii"))
            else:
                rfc_jws.deserialize_compact(token.raw, self._rfc_key, algorithms=[self.alg])
        except (JOSEError, JoseError, InvalidSignature, ValueError) as exc:
            raise SignatureError("invalid token signature") from exc


# -- JWE with a password ---------------------------------------------------------------------------

def encrypt_pbes2(plaintext: bytes, password: bytes, *, content_type: str = "jwk+json",
                  iterations: int = PBES2_ITERATIONS) -> str:
    """Compact JWE, PBES2-HS256+A128KW / A256GCM, as step escrows provisioner keys."""
    salt = os.urandom(16)
    header = {"alg": PBES2_ALG, "cty": content_type, "enc": PBES2_ENC,
              "p2c": iterations, "p2s": b64url_encode(salt)}
    protected = b64url_encode(_canonical(header))
    cek, iv = os.urandom(32), os.urandom(12)
    wrapped = aes_key_wrap(_pbes2_kek(password, salt, iterations), cek)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return ".".join([protected, b64url_encode(wrapped), b64url_encode(iv),
                     b64url_encode(ciphertext), b64url_encode(tag)])


def decrypt_pbes2(jwe: str, password: bytes) -> bytes:
    """Decrypt a compact PBES2-HS256+A128KW / A256GCM JWE; ``ValueError`` on a wrong password."""
    parts = jwe.strip().split(".")
    if len(parts) != 5:
        raise JOSEFormatError("not a compact JWE")
    protected, wrapped, iv, ciphertext, tag = parts
    try:
        header = json.loads(b64url_decode(protected))
    except ValueError as exc:
        raise JOSEFormatError("JWE header is not base64url JSON") from exc
    if header.get("alg") != PBES2_ALG or header.get("enc") != PBES2_ENC:
        raise JOSEFormatError(f"unsupported JWE algorithms {header.get('alg')}/{header.get('enc')}")
    iterations = header.get("p2c")
    if not isinstance(iterations, int) or not 1000 <= iterations <= MAX_PBES2_ITERATIONS:
        raise JOSEFormatError("JWE p2c is out of range")
    salt = b64url_decode(str(header.get("p2s", "")))
    try:
        cek = aes_key_unwrap(_pbes2_kek(password, salt, iterations), b64url_decode(wrapped))
        return AESGCM(cek).decrypt(b64url_decode(iv), b64url_decode(ciphertext) +
                                   b64url_decode(tag), protected.encode("ascii"))
    except (InvalidUnwrap, InvalidTag, ValueError) as exc:
        raise ValueError("decryption failed: wrong password or corrupted key") from exc


def _pbes2_kek(password: bytes, salt: bytes, iterations: int) -> bytes:
    # RFC 7518 §4.8.1.1: the salt input is the algorithm name, a zero byte, then p2s.
    full_salt = PBES2_ALG.encode("ascii") + b"\x00" + salt
    return PBKDF2HMAC(hashes.SHA256(), 16, full_salt, iterations).derive(password)
