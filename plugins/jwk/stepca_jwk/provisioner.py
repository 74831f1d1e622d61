"""The JWK provisioner: tokens signed by a provisioner key the CA knows."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from stepca.errors import Forbidden, Unauthorized
from stepca.jose import (
    JOSEFormatError,
    SignatureError,
    Token,
    VerifyingKey,
    b64url_encode,
    default_alg,
    key_from_jwk,
    public_jwk,
)
from stepca.provisioner import (
    CommonNameValidator,
    CSRValidator,
    Provisioner,
    ProvisionerContext,
    SANsValidator,
    SignOptions,
    check_token_claims,
    token_id_of,
)
from stepca.x509util import ProvisionerExtension, split_sans

MAX_SANS = 100


@dataclass(frozen=True)
class CSRFingerprintValidator:
    """The token's ``cnf.x5rt#S256`` pins the exact CSR it authorizes."""

    expected: str

    def __call__(self, csr: x509.CertificateSigningRequest) -> None:
        digest = hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).digest()
        if b64url_encode(digest) != self.expected:
            raise Forbidden("certificate request fingerprint does not match the token's cnf claim")


class JWKProvisioner(Provisioner):
    type = "JWK"
    type_id = 1

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        key = config.get("key")
        if not isinstance(key, dict) or not key.get("kid"):
            raise ValueError("a JWK provisioner needs a 'key' object with a 'kid'")
        if "d" in key:
            raise ValueError("'key' must be a public key; the private key belongs in "
                             "'encryptedKey' or with the provisioner's owner")
        self.kid: str = str(key["kid"])
        alg = default_alg(key)
        try:
            self.verifier = VerifyingKey(key_from_jwk(public_jwk(key)), alg or "")
        except (JOSEFormatError, SignatureError) as exc:
            raise ValueError(f"unusable key: {exc}") from None
        self._extension = ProvisionerExtension(self.type_id, self.name, self.kid)
        encrypted = config.get("encryptedKey")
        self._encrypted_key = encrypted if isinstance(encrypted, str) else None

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        iss, kid = token.claims.get("iss"), token.header.get("kid")
        if isinstance(iss, str) and isinstance(kid, str):
            return f"{iss}:{kid}"
        return None

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (f"{self.name}:{self.kid}",)

    def _verify(self, token: Token, kind: str) -> str:
        # The signature first: nothing in an unverified token is trusted.
        try:
            self.verifier.verify(token)
        except SignatureError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        check_token_claims(token, issuer=self.name, audiences=self.context.audiences, kind=kind,
                           context=self.context)
        return token_id_of(token)

    def authorize_sign(self, token: Token) -> SignOptions:
        token_id = self._verify(token, "sign")
        subject: str = token.claims["sub"]
        sans = token.claims.get("sans") or [subject]
        if (not isinstance(sans, list) or len(sans) > MAX_SANS
                or not all(isinstance(s, str) and s for s in sans)):
            raise Unauthorized("invalid token: sans must be a list of at most 100 names")
        authorized = split_sans(sans)
        # the key is the authority's to check (stepca.key_policy), for every provisioner
        validators: list[CSRValidator] = [CommonNameValidator((subject, *sans)),
                                          SANsValidator(authorized)]
        cnf = token.claims.get("cnf")
        if isinstance(cnf, dict) and cnf.get("x5rt#S256"):
            validators.append(CSRFingerprintValidator(str(cnf["x5rt#S256"])))
        return SignOptions(
            token_id=token_id, subject=subject, sans=authorized, claims=self.claims,
            extension=self._extension,
            validators=tuple(validators))

    def authorize_revoke(self, token: Token) -> str:
        return self._verify(token, "revoke")

    def encrypted_key(self, kid: str) -> str | None:
        return self._encrypted_key if kid == self.kid else None
