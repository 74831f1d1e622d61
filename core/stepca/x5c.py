"""Renewal tokens in step's ``x5cInsecure`` form: a JWT signed by the certificate's own key,
carrying the certificate chain in its header. Validity periods in the chain are ignored on
purpose (an expired certificate may renew where its provisioner allows it)."""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from stepca.errors import Unauthorized
from stepca.jose import SignatureError, Token, VerifyingKey, default_alg, jwk_from_key
from stepca.key_policy import public_key_of
from stepca.provisioner import Audiences, ProvisionerContext, check_token_claims, token_id_of
from stepca.x509util import subject_cn

__all__ = ["RENEW_ISSUER", "verify_renew_token"]

RENEW_ISSUER = "step-ca-client/1.0"
MAX_CHAIN = 5


def verify_renew_token(token: Token, *, roots: tuple[x509.Certificate, ...],
                       audiences: Audiences, context: ProvisionerContext,
                       provisioner_names: frozenset[str]) -> tuple[x509.Certificate, str]:
    """The certificate a renew token speaks for, and the token id to spend.

    Raises ``Unauthorized`` unless the chain leads to one of ``roots``, the token is signed by
    the leaf's key, and its claims are a renew token's; ``Forbidden`` if the leaf's key is
    outside the key policy (``stepca.key_policy``), which renewal would refuse anyway."""
    chain_b64 = token.header.get("x5cInsecure")
    if not isinstance(chain_b64, list) or not 0 < len(chain_b64) <= MAX_CHAIN:
        raise Unauthorized("invalid token: x5cInsecure must hold the certificate chain")
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
                 for c in chain_b64]
    except (ValueError, TypeError):
        raise Unauthorized("invalid token: x5cInsecure holds something that is not a "
                           "certificate") from None
    _verify_chain(chain, roots)
    leaf = chain[0]
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise Unauthorized("certificate lacks key usage or extended key usage") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise Unauthorized("certificate is not valid for client authentication")
    key = public_key_of(leaf, owner="certificate")  # a key JOSE cannot name is refused here
    alg = default_alg(jwk_from_key(key))
    try:
        VerifyingKey(key, alg or "").verify(token)
    except SignatureError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    issuers = frozenset({RENEW_ISSUER}) | provisioner_names
    check_token_claims(token, issuer=issuers, audiences=audiences, kind="renew", context=context)
    if token.claims["sub"] != subject_cn(leaf.subject):
        raise Unauthorized("invalid token: subject does not match the certificate")
    return leaf, token_id_of(token)


def _verify_chain(chain: list[x509.Certificate], roots: tuple[x509.Certificate, ...]) -> None:
    """Each certificate is signed by the next, the last by a root; validity is not checked."""
    try:
        for child, parent in zip(chain, chain[1:], strict=False):
            child.verify_directly_issued_by(parent)
        last = chain[-1]
        if any(last == root for root in roots):
            return
        for root in roots:
            try:
                last.verify_directly_issued_by(root)
                return
            except (ValueError, TypeError, InvalidSignature):
                continue
    except (ValueError, TypeError, InvalidSignature):
        pass
    raise Unauthorized("certificate chain does not lead to a root of this CA")


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
