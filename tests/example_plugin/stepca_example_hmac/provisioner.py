"""The HMAC provisioner: ``/sign`` and ``/revoke`` tokens are HS256 JWTs whose key is a secret
shared between the CA (the provisioner's ca.json entry) and the workloads that use it.

ca.json entry::

    {"type": "HMAC", "name": "ci", "secret": "<base64url, at least 32 random bytes>"}

Checks, in this order: the header says HS256 and nothing the plugin does not understand; the
signature verifies (nothing in an unverified token is trusted); then stepca's shared time,
issuer (``iss`` = the provisioner's name) and audience checks; a ``jti`` is required and is
the id the authority spends; the CSR may only ask for the names the token lists.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from stepca.errors import Unauthorized
from stepca.jose import JOSEFormatError, Token, b64url_decode, b64url_encode
from stepca.provisioner import (CommonNameValidator, Provisioner, ProvisionerContext,
                                SANsValidator, SignOptions, check_token_claims, token_id_of)
from stepca.x509util import ProvisionerExtension, split_sans

__all__ = ["HMACProvisioner", "decode_secret", "sign_token"]

ALG = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
MAX_SANS = 100


def decode_secret(value: Any) -> bytes:
    """The secret bytes of a ca.json ``secret`` (base64url); ``ValueError`` if unusable."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an HMAC provisioner needs a 'secret' (base64url of at least "
                         f"{MIN_SECRET_BYTES} random bytes)")
    try:
        secret = b64url_decode(value.strip())
    except JOSEFormatError:
        raise ValueError("'secret' is not base64url") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"'secret' must decode to at least {MIN_SECRET_BYTES} bytes, "
                         f"got {len(secret)}")
    return secret


def _mac(secret: bytes, signing_input: str) -> bytes:
    return hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()


def sign_token(claims: Mapping[str, Any], secret: bytes) -> str:
    """A compact HS256 JWT of ``claims`` (what a workload sends as ``ott``)."""
    header = b64url_encode(json.dumps({"alg": ALG, "typ": "JWT"}, separators=(",", ":"))
                           .encode())
    payload = b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{b64url_encode(_mac(secret, signing_input))}"


class HMACProvisioner(Provisioner):
    type = "HMAC"
    # type_id stays 0: step's provisioner extension has no number for this type

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        self._secret = decode_secret(config.get("secret"))

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        # keyed by issuer alone: names are unique in ca.json, and a token with another alg
        # should reach authorize_sign to be refused with a clear reason
        iss = token.claims.get("iss")
        return f"hmac:{iss}" if isinstance(iss, str) and iss else None

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (f"hmac:{self.name}",)

    def _verify(self, token: Token, kind: str) -> str:
        if token.header.get("alg") != ALG:
            raise Unauthorized(f"invalid token: algorithm {token.header.get('alg') or 'none'} "
                               f"is not {ALG}")
        if "crit" in token.header:
            raise Unauthorized("invalid token: unsupported critical header parameters")
        signing_input, _, signature = token.raw.rpartition(".")
        try:
            given = b64url_decode(signature)
        except JOSEFormatError:
            raise Unauthorized("invalid token: malformed signature") from None
        if not hmac.compare_digest(given, _mac(self._secret, signing_input)):
            raise Unauthorized("invalid token: invalid token signature")
        check_token_claims(token, issuer=self.name, audiences=self.context.audiences, kind=kind,
                           context=self.context)
        if "jti" not in token.claims:  # this plugin's own rule; stepca would hash the token
            raise Unauthorized("invalid token: jti is required")
        return token_id_of(token)

    def authorize_sign(self, token: Token) -> SignOptions:
        token_id = self._verify(token, "sign")
        subject: str = token.claims["sub"]
        sans = token.claims.get("sans") or [subject]
        if (not isinstance(sans, list) or len(sans) > MAX_SANS
                or not all(isinstance(s, str) and s for s in sans)):
            raise Unauthorized(f"invalid token: sans must be a list of at most {MAX_SANS} names")
        authorized = split_sans(sans)
        return SignOptions(
            token_id=token_id, subject=subject, sans=authorized, claims=self.claims,
            extension=ProvisionerExtension(self.type_id, self.name, self.name),
            validators=(CommonNameValidator((subject, *sans)), SANsValidator(authorized)))

    def authorize_revoke(self, token: Token) -> str:
        return self._verify(token, "revoke")

    def public_json(self) -> dict[str, Any]:
        # GET /provisioners is public: the shared secret must never be listed
        return {key: value for key, value in self.config.items() if key != "secret"}
