"""``REMOTEJWKS``: tokens signed by a key of the JWKS at ca.json's ``jwksURL`` (test only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepca import hookimpl
from stepca.errors import Unauthorized
from stepca.jose import SignatureError, Token, VerifyingKey
from stepca.provisioner import (CommonNameValidator, Provisioner, ProvisionerContext,
                                SANsValidator, SignOptions, check_token_claims, token_id_of)
from stepca.remote_keys import NotReady, RemoteKeySet
from stepca.x509util import ProvisionerExtension, split_sans


class RemoteJWKSProvisioner(Provisioner):
    type = "REMOTEJWKS"

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        self.keys = RemoteKeySet(str(config.get("jwksURL", "")),
                                 name=f"provisioner '{self.name}'")
        self.keys.start()

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        iss = token.claims.get("iss")
        return f"remotejwks:{iss}" if isinstance(iss, str) and iss else None

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (f"remotejwks:{self.name}",)

    def authorize_sign(self, token: Token) -> SignOptions:
        try:
            key = self.keys.key(str(token.header.get("kid", "")))
        except NotReady as exc:
            raise Unauthorized(f"not ready: {exc}") from None
        except KeyError:
            raise Unauthorized("invalid token: unknown key") from None
        try:
            VerifyingKey(key, "ES256").verify(token)
        except SignatureError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        check_token_claims(token, issuer=self.name, audiences=self.context.audiences,
                           kind="sign", context=self.context)
        subject: str = token.claims["sub"]
        sans = split_sans(token.claims.get("sans") or [subject])
        return SignOptions(
            token_id=token_id_of(token), subject=subject, sans=sans, claims=self.claims,
            extension=ProvisionerExtension(self.type_id, self.name, self.name),
            validators=(CommonNameValidator((subject,)), SANsValidator(sans)))


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    return [RemoteJWKSProvisioner]
