"""The one key policy: which public keys the CA puts into certificates.

``/sign``, ``/renew`` and ``/rekey`` apply it alike, for every provisioner type: EC keys on
P-256, P-384 or P-521, Ed25519 keys, and RSA keys of 2048 to 8192 bits. Everything else (other
curves, Ed448, DSA, X25519, X448, smaller or larger RSA) is refused with 403. step-ca accepts
any ECDSA curve Go can parse; docs/compatibility.md says why we do not.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from stepca.errors import Forbidden

__all__ = ["ALLOWED_CURVES", "MAX_RSA_BITS", "MIN_RSA_BITS", "check_public_key",
           "public_key_of"]

ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_ALLOWED = "EC P-256, P-384 or P-521, Ed25519, or RSA of 2048 to 8192 bits"
_KIND_NAMES = ((dsa.DSAPublicKey, "DSA"), (ed448.Ed448PublicKey, "Ed448"),
               (x25519.X25519PublicKey, "X25519"), (x448.X448PublicKey, "X448"))


def check_public_key(key: Any, *, owner: str = "certificate request",
                     min_rsa_bits: int = MIN_RSA_BITS) -> None:
    """Raise ``Forbidden`` unless the policy allows ``key``; ``owner`` names where the key came
    from in the message. ``min_rsa_bits`` may only raise the floor."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise Forbidden(f"{owner} key is on the elliptic curve {key.curve.name}; "
                            f"the CA certifies {_ALLOWED}")
    elif isinstance(key, rsa.RSAPublicKey):
        floor = max(min_rsa_bits, MIN_RSA_BITS)
        if key.key_size < floor:
            raise Forbidden(f"{owner} RSA key must be at least {floor} bits ({floor // 8} bytes)")
        if key.key_size > MAX_RSA_BITS:
            raise Forbidden(f"{owner} RSA key must be at most {MAX_RSA_BITS} bits "
                            f"({MAX_RSA_BITS // 8} bytes)")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        kind = next((name for cls, name in _KIND_NAMES if isinstance(key, cls)),
                    type(key).__name__)
        raise Forbidden(f"{owner} key of type {kind} is not supported; the CA certifies "
                        f"{_ALLOWED}")


def public_key_of(holder: x509.CertificateSigningRequest | x509.Certificate, *,
                  owner: str = "certificate request", min_rsa_bits: int = MIN_RSA_BITS) -> Any:
    """The public key of a CSR or certificate if the policy allows it, else ``Forbidden``.

    Load it once and keep it: cryptography does not cache ``public_key()``, and loading an EC
    key (its point is validated) costs ~10 µs."""
    try:
        key = holder.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Forbidden(f"{owner} key is of an unknown type or malformed; the CA certifies "
                        f"{_ALLOWED}") from None
    check_public_key(key, owner=owner, min_rsa_bits=min_rsa_bits)
    return key
