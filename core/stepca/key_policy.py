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
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import PublicKeyAlgorithmOID

from stepca import _der
from stepca.errors import Forbidden

__all__ = ["ALLOWED_CURVES", "MAX_RSA_BITS", "MIN_RSA_BITS", "check_public_key",
           "public_key_of"]

ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_DSA_OID = _der.oid(PublicKeyAlgorithmOID.DSA.dotted_string)
_ALLOWED = "EC P-256, P-384 or P-521, Ed25519, or RSA of 2048 to 8192 bits"


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
        # By class name: cryptography >= 51 warns on any use of its DSA classes.
        kind = type(key).__name__.removesuffix("PublicKey")
        raise Forbidden(f"{owner} key of type {kind} is not supported; the CA certifies "
                        f"{_ALLOWED}")


def public_key_of(holder: x509.CertificateSigningRequest | x509.Certificate, *,
                  owner: str = "certificate request", min_rsa_bits: int = MIN_RSA_BITS) -> Any:
    """The public key of a CSR or certificate if the policy allows it, else ``Forbidden``.

    Load it once and keep it: cryptography does not cache ``public_key()``, and loading an EC
    key (its point is validated) costs ~10 µs."""
    if _carries_dsa_key(holder):
        raise Forbidden(f"{owner} key of type DSA is not supported; the CA certifies {_ALLOWED}")
    try:
        key = holder.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Forbidden(f"{owner} key is of an unknown type or malformed; the CA certifies "
                        f"{_ALLOWED}") from None
    check_public_key(key, owner=owner, min_rsa_bits=min_rsa_bits)
    return key


def _carries_dsa_key(holder: x509.CertificateSigningRequest | x509.Certificate) -> bool:
    """Read without loading the key: cryptography >= 51 warns on every DSA key it loads, and a
    warning filter set to "error" would turn a client's DSA request into a 500."""
    if isinstance(holder, x509.Certificate):
        return holder.public_key_algorithm_oid == PublicKeyAlgorithmOID.DSA
    request = holder.tbs_certrequest_bytes
    if _DSA_OID not in request:
        return False  # the common case, in a tenth of the time of the walk below
    try:
        _, request_info, _ = _der.read(request)
        _, _, rest = _der.read(request_info)  # version
        _, _, rest = _der.read(rest)  # subject
        _, key_info, _ = _der.read(rest)
        _, algorithm, _ = _der.read(key_info)
    except ValueError:
        return False  # public_key() reports the malformed key
    return algorithm.startswith(_DSA_OID)
