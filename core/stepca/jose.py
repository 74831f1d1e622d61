"""The one JOSE API of stepca.

JWS/JWT go through python-jose (the project's chosen JOSE library) for the algorithms it has and
through joserfc for EdDSA and PS*. The password-encrypted provisioner keys step uses
(PBES2-HS256+A128KW with A256GCM and 600,000 iterations) are built from ``cryptography``
primitives, because joserfc refuses more than 300,000 iterations and python-jose has no PBES2
(see docs/decisions/0002-jose.md).

python-jose and joserfc are imported inside the functions that use them: verifying a token and
reading its claims (the CA's hot path, ``step ca certificate --token``) needs neither, and
importing both cost ``step`` about 30 ms at start-up (decision 0043).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

__all__ = [
    "JOSEFormatError",
    "SignatureError",
    "Token",
    "VerifyingKey",
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
    from joserfc.jwk import ECKey, OKPKey, RSAKey

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
    from joserfc.errors import JoseError
    from joserfc.jwk import JWKRegistry

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

    @property
    def signing_input(self) -> str:
        """The protected header and the payload as sent (``header.payload``): what the
        signature covers, and what no one but the signer can change."""
        return self.raw.rpartition(".")[0]


def parse_unverified(raw: str) -> Token:
    """Split and decode a compact JWT without verifying it (for routing and inspection only)."""
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_BYTES:
        raise JOSEFormatError("token is not a string of at most 16 KiB")
    parts = raw.strip().split(".")
    if len(parts) != 3:
        raise JOSEFormatError("token is not a compact JWS")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        claims = orjson.loads(b64url_decode(parts[1]))
    except ValueError as exc:  # orjson's errors are ValueErrors
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
        return _python_jose_sign(payload, key, alg, extra)
    if alg == "EdDSA":
        # joserfc warns on "EdDSA" (RFC 9864) but step still uses it; Ed25519 is one call.
        signing_input = f"{b64url_encode(_canonical(header))}.{b64url_encode(payload)}"
        return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"
    return _joserfc_sign(header, payload, key, alg)


def _python_jose_sign(payload: bytes, key: Any, alg: str, headers: dict[str, Any]) -> str:
    from jose import jwk as jose_jwk
    from jose import jws as jose_jws

    return jose_jws.sign(payload, jose_jwk.construct(key, alg), headers=headers, algorithm=alg)


def _joserfc_sign(header: dict[str, Any], payload: bytes, key: Any, alg: str) -> str:
    from joserfc import jws as rfc_jws

    return rfc_jws.serialize_compact(header, payload, _rfc_key(key), algorithms=[alg])


class VerifyingKey:
    """A public key parsed once and reused for every signature it checks (the hot path).

    Verification calls ``cryptography`` directly on the token already split by
    ``parse_unverified``: decoding it again in a JOSE library cost a third of the check."""

    def __init__(self, key: Any, alg: str) -> None:
        if alg not in SIGNING_ALGS or not _alg_fits_key(alg, key):
            raise SignatureError(f"algorithm {alg} does not fit the key")
        self.alg = alg
        self._key = key
        self._check = _signature_check(key, alg)

    def verify(self, token: Token) -> None:
        """Raise ``SignatureError`` unless ``token`` carries this key's algorithm and signature."""
        if token.alg != self.alg:
            raise SignatureError(f"token algorithm {token.alg or 'none'} does not match the key's "
                                 f"{self.alg}")
        signing_input, _, encoded = token.raw.rpartition(".")
        try:
            signature = b64url_decode(encoded)
            # One spelling per signature: a token is never accepted in a second encoding.
            if b64url_encode(signature) != encoded:
                raise SignatureError("invalid token signature encoding")
            self._check(signature, signing_input.encode("ascii"))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError("invalid token signature") from exc


_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_FIELD_BYTES = {"ES256": 32, "ES384": 48, "ES512": 66}


def _signature_check(key: Any, alg: str) -> Any:
    """``check(signature, signing_input)`` for ``alg`` (RFC 7518 §3), raising on a mismatch."""
    if alg == "EdDSA":
        return key.verify
    digest = _HASHES[alg[2:]]()
    if alg.startswith("ES"):
        size = _EC_FIELD_BYTES[alg]
        ecdsa = ec.ECDSA(digest)

        def check_ecdsa(signature: bytes, data: bytes) -> None:
            if len(signature) != 2 * size:  # JWS uses fixed-width R || S, not DER
                raise InvalidSignature("wrong ECDSA signature length")
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            key.verify(der, data, ecdsa)
        return check_ecdsa
    pad = (padding.PKCS1v15() if alg.startswith("RS")
           else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size))
    return lambda signature, data: key.verify(signature, data, pad, digest)


# -- JWE with a password ---------------------------------------------------------------------------

def encrypt_pbes2(plaintext: bytes, password: bytes, *, content_type: str | None = "jwk+json",
                  iterations: int = PBES2_ITERATIONS) -> str:
    """Compact JWE, PBES2-HS256+A128KW / A256GCM, as step escrows provisioner keys
    (``content_type=None`` leaves ``cty`` out, for arbitrary data)."""
    salt = os.urandom(16)
    header: dict[str, Any] = {"alg": PBES2_ALG, "cty": content_type, "enc": PBES2_ENC,
                              "p2c": iterations, "p2s": b64url_encode(salt)}
    if content_type is None:
        del header["cty"]
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


# -- additions for `step crypto`: HMAC, raw-payload JWS, JSON serializations, key-based JWE -------

HMAC_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
JWE_KEY_ALGS = {"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW", "RSA-OAEP",
                "RSA-OAEP-256", "A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW",
                "A256GCMKW", "dir"}
JWE_ENCS = {"A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"}
_JWE_PARTS = ("protected", "encrypted_key", "iv", "ciphertext", "tag")


def sign_compact(payload: bytes, key: Any, alg: str, header: dict[str, Any] | None = None) -> str:
    """A compact JWS over raw ``payload``; ``key`` is a ``cryptography`` private key, or the
    secret bytes for HS256/384/512."""
    header = {**(header or {}), "alg": alg}
    signing_input = f"{b64url_encode(_canonical(header))}.{b64url_encode(payload)}"
    if alg in HMAC_ALGS:
        if not isinstance(key, bytes):
            raise SignatureError(f"algorithm {alg} needs a symmetric (oct) key")
        mac = hmac.new(key, signing_input.encode("ascii"), HMAC_ALGS[alg]).digest()
        return f"{signing_input}.{b64url_encode(mac)}"
    if isinstance(key, bytes) or alg not in SIGNING_ALGS or not _alg_fits_key(alg, key):
        raise SignatureError(f"algorithm {alg} does not fit the key")
    if alg == "EdDSA":
        return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"
    if alg in _PYTHON_JOSE_ALGS:
        # python-jose orders the header itself; that is fine, the header is inside the signature.
        extra = {k: v for k, v in header.items() if k != "alg"}
        return _python_jose_sign(payload, key, alg, extra)
    return _joserfc_sign(header, payload, key, alg)


def split_compact_jws(raw: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Header, payload and signature of a compact JWS (payload may be any bytes)."""
    parts = raw.strip().split(".")
    if len(parts) != 3:
        raise JOSEFormatError("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JOSEFormatError("JWS header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise JOSEFormatError("JWS header must be a JSON object")
    return header, b64url_decode(parts[1]), b64url_decode(parts[2])


def verify_compact(raw: str, key: Any, alg: str) -> tuple[dict[str, Any], bytes]:
    """Verify a compact JWS with ``key`` (public key, or secret bytes for HS*) under exactly
    ``alg``; returns header and payload. Refuses ``none`` and HMAC with an asymmetric key."""
    header, payload, signature = split_compact_jws(raw)
    token_alg = str(header.get("alg", ""))
    if token_alg.lower() == "none" or not token_alg:
        raise SignatureError("the token is unsigned (alg none)")
    if token_alg != alg:
        raise SignatureError(f"token algorithm {token_alg} does not match the expected {alg}")
    if alg in HMAC_ALGS:
        if not isinstance(key, bytes):
            # The classic confusion attack: a public key used as an HMAC secret.
            raise SignatureError(f"algorithm {alg} requires a symmetric key, not a public key")
        signing_input = raw.strip().rsplit(".", 1)[0].encode("ascii")
        if not hmac.compare_digest(hmac.new(key, signing_input, HMAC_ALGS[alg]).digest(),
                                   signature):
            raise SignatureError("invalid token signature")
        return header, payload
    if isinstance(key, bytes):
        raise SignatureError(f"algorithm {alg} does not fit a symmetric key")
    # VerifyingKey only reads raw and the header's alg, so any payload works here.
    VerifyingKey(key, alg).verify(Token(raw=raw.strip(), header=header, claims={}))
    return header, payload


def jws_json_to_compacts(data: dict[str, Any]) -> list[str]:
    """Compact forms of a flattened or general JWS JSON serialization (protected headers only)."""
    payload = data.get("payload")
    if not isinstance(payload, str):
        raise JOSEFormatError("JWS JSON lacks a payload")
    sigs = data.get("signatures") if "signatures" in data else [data]
    if not isinstance(sigs, list) or not sigs:
        raise JOSEFormatError("JWS JSON lacks signatures")
    out = []
    for sig in sigs:
        if not isinstance(sig, dict) or sig.get("header"):
            # Unprotected headers are not covered by the signature; refuse rather than guess.
            raise JOSEFormatError("JWS JSON with unprotected headers is not supported")
        out.append(f"{sig.get('protected', '')}.{payload}.{sig.get('signature', '')}")
    return out


def jws_compact_to_json(raw: str) -> dict[str, str]:
    protected, payload, signature = raw.strip().split(".")
    return {"payload": payload, "protected": protected, "signature": signature}


def jwe_compact_to_json(raw: str) -> dict[str, str]:
    """The flattened JWE JSON serialization of a compact JWE (what step writes to files)."""
    parts = raw.strip().split(".")
    if len(parts) != 5:
        raise JOSEFormatError("not a compact JWE")
    return {name: value for name, value in zip(_JWE_PARTS, parts, strict=True)
            if value or name == "ciphertext"}


def jwe_json_to_compact(data: dict[str, Any]) -> str:
    """Compact form of a flattened (or single-recipient general) JWE with only a protected
    header; anything else cannot be represented compactly."""
    if "recipients" in data:
        recipients = data["recipients"]
        if not isinstance(recipients, list) or len(recipients) != 1:
            raise JOSEFormatError("JWE JSON with several recipients is not supported")
        data = {**data, **recipients[0]}
    if data.get("unprotected") or data.get("header") or data.get("aad"):
        raise JOSEFormatError("JWE JSON with unprotected headers or aad is not supported")
    if not isinstance(data.get("protected"), str) or not isinstance(data.get("ciphertext"), str):
        raise JOSEFormatError("not a JWE JSON serialization")
    return ".".join(str(data.get(name, "")) for name in _JWE_PARTS)


def read_jwe(text: str) -> str:
    """A JWE given as compact text or JSON serialization, as compact text."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise JOSEFormatError("JWE is not valid JSON") from exc
        if not isinstance(data, dict):
            raise JOSEFormatError("not a JWE JSON serialization")
        return jwe_json_to_compact(data)
    if text.count(".") != 4:
        raise JOSEFormatError("not a JWE")
    return text


def jwe_header(compact: str) -> dict[str, Any]:
    try:
        header = json.loads(b64url_decode(compact.split(".", 1)[0]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JOSEFormatError("JWE header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise JOSEFormatError("JWE header must be a JSON object")
    return header


def _rfc_jwe_key(data: dict[str, Any]) -> Any:
    from joserfc.errors import JoseError
    from joserfc.jwk import JWKRegistry

    # alg/use name what the key is *for*; joserfc would refuse a "sig" key for encryption.
    clean = {k: v for k, v in data.items() if k not in ("alg", "use", "key_ops")}
    try:
        return JWKRegistry.import_key(clean)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise JOSEFormatError(f"invalid JWK: {exc}") from exc


def encrypt_jwe(plaintext: bytes, jwk: dict[str, Any], *, alg: str, enc: str = "A256GCM",
                headers: dict[str, Any] | None = None) -> str:
    """Compact JWE to ``jwk`` (a public EC/OKP/RSA or an oct JWK dict) via joserfc."""
    from joserfc import jwe as rfc_jwe
    from joserfc.errors import JoseError

    if alg not in JWE_KEY_ALGS or enc not in JWE_ENCS:
        raise JOSEFormatError(f"unsupported JWE algorithms {alg}/{enc}")
    protected = {**(headers or {}), "alg": alg, "enc": enc}
    try:
        return rfc_jwe.encrypt_compact(protected, plaintext, _rfc_jwe_key(jwk),
                                       algorithms=[alg, enc])
    except (JoseError, ValueError, TypeError) as exc:
        raise JOSEFormatError(f"cannot encrypt with {alg}: {exc}") from exc


def decrypt_jwe(compact: str, jwk: dict[str, Any]) -> bytes:
    """Decrypt a compact JWE with a private (or oct) JWK dict; ``ValueError`` on failure."""
    from joserfc import jwe as rfc_jwe
    from joserfc.errors import JoseError

    header = jwe_header(compact)
    alg, enc = str(header.get("alg")), str(header.get("enc"))
    if alg not in JWE_KEY_ALGS or enc not in JWE_ENCS:
        raise JOSEFormatError(f"unsupported JWE algorithms {alg}/{enc}")
    try:
        return bytes(rfc_jwe.decrypt_compact(compact, _rfc_jwe_key(jwk),
                                             algorithms=[alg, enc]).plaintext)
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"decryption failed: {exc}") from exc
