"""The Azure provisioner: a virtual machine's managed identity token, signed by its Microsoft
Entra tenant, authorizes one certificate for that VM (trust on first use), as step-ca's."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from stepca.errors import Unauthorized
from stepca.jose import SignatureError, Token, VerifyingKey
from stepca.provisioner import (
    LEEWAY,
    CommonNameValidator,
    CSRValidator,
    Provisioner,
    ProvisionerContext,
    SANsValidator,
    SignOptions,
    check_config_keys,
    config_flag,
    config_strings,
    config_text,
)
from stepca.remote_keys import NotReady, OpenIDProviderKeys
from stepca.x509util import SANs, ProvisionerExtension

__all__ = ["DEFAULT_AUDIENCE", "AzureProvisioner", "ManagedIdentity", "discovery_url"]

LOGIN_URL = "https://login.microsoftonline.com"
DEFAULT_AUDIENCE = "https://management.azure.com/"
MAX_MIRID = 1024  # an ARM resource id: a few hundred characters at most
# step-ca's rule: a VM's system-assigned identity or a user-assigned identity; Azure's names
# have no whitespace, and a name that did (a trailing newline) would pass for another
MIRID = re.compile(r"/subscriptions/([^/\s]+)/resourceGroups/([^/\s]+)/providers/Microsoft\."
                   r"(?:Compute/virtualMachines|ManagedIdentity/userAssignedIdentities)"
                   r"/([^/\s]+)", re.IGNORECASE)
_KNOWN_KEYS = frozenset({"type", "name", "tenantID", "resourceGroups", "subscriptionIDs",
                         "objectIDs", "audience", "disableCustomSANs", "disableTrustOnFirstUse",
                         "claims", "openidConfigurationURL"})


def discovery_url(tenant_id: str) -> str:
    """Where Microsoft publishes the tenant's issuer and keys."""
    return f"{LOGIN_URL}/{quote(tenant_id, safe='')}/.well-known/openid-configuration"


@dataclass(frozen=True)
class ManagedIdentity:
    """What a verified token's ``xms_mirid`` (and ``oid``) say about the identity."""

    subscription_id: str
    resource_group: str
    name: str
    """The VM's name, or the user-assigned identity's."""
    object_id: str | None
    """The identity's principal (``oid``), which ``objectIDs`` lists."""

    @classmethod
    def of(cls, claims: Mapping[str, Any]) -> ManagedIdentity:
        mirid = claims.get("xms_mirid")
        match = (MIRID.fullmatch(mirid) if isinstance(mirid, str) and len(mirid) <= MAX_MIRID
                 else None)
        if match is None:
            raise Unauthorized("invalid token: xms_mirid is not the resource id of a virtual "
                               "machine or a user-assigned identity")
        oid = claims.get("oid")
        return cls(*match.groups(), object_id=oid if isinstance(oid, str) else None)





class AzureProvisioner(Provisioner):
    type = "Azure"
    type_id = 5

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        if config.get("instanceAge") is not None:
            # step-ca 0.19's Azure has none: the token says when it was issued, not when the
            # VM was created
            raise ValueError("'instanceAge' is not supported: an Azure managed identity token "
                             "does not say when the virtual machine was created")
        check_config_keys(config, _KNOWN_KEYS)
        self.tenant_id = config_text(config, "tenantID")
        self.audience = config_text(config, "audience", DEFAULT_AUDIENCE)
        self.resource_groups = config_strings(config, "resourceGroups")
        self.subscription_ids = config_strings(config, "subscriptionIDs")
        self.object_ids = config_strings(config, "objectIDs")
        self.disable_custom_sans = config_flag(config, "disableCustomSANs")
        self.disable_trust_on_first_use = config_flag(config, "disableTrustOnFirstUse")
        url = config_text(config, "openidConfigurationURL", discovery_url(self.tenant_id))
        self.provider = OpenIDProviderKeys(url, name=f"provisioner '{self.name}'")
        self.provider.start()

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        # step-ca's: an Azure provisioner answers the tokens of its tenant (tid)
        tid = token.claims.get("tid")
        return tid if isinstance(tid, str) and tid else None

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (self.tenant_id,)

    def _signature(self, token: Token) -> str:
        """Checks the signature with the tenant's key; returns the tenant's issuer."""
        kid = token.header.get("kid")
        if token.alg != "RS256" or not isinstance(kid, str):
            raise Unauthorized("invalid token: an Azure managed identity token is RS256 "
                               "with a kid")
        try:
            key = self.provider.key(kid)
            issuer = self.provider.issuer
        except NotReady as exc:
            raise Unauthorized(f"the Azure tenant's keys are not available yet: {exc}") from None
        except KeyError:
            raise Unauthorized(f"invalid token: no key '{kid[:64]}' in the Azure tenant's "
                               "keys") from None
        try:
            VerifyingKey(key, "RS256").verify(token)
        except SignatureError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        return issuer

    def _check_claims(self, claims: Mapping[str, Any], issuer: str) -> None:
        # step-ca's checks (a day-long token: no bound on its lifetime), exp required
        if claims.get("iss") != issuer:
            raise Unauthorized("invalid token: wrong issuer")
        aud = claims.get("aud")
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise Unauthorized("invalid token: wrong audience")
        now, leeway = self.context.clock().timestamp(), LEEWAY.total_seconds()
        times = {label: claims.get(label) for label in ("exp", "nbf", "iat")}
        for label, value in times.items():
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise Unauthorized(f"invalid token: {label} is not a number")
        if times["exp"] is None:
            raise Unauthorized("invalid token: exp is required")
        if now - leeway > times["exp"]:
            raise Unauthorized("invalid token: token has expired")
        if times["nbf"] is not None and now + leeway < times["nbf"]:
            raise Unauthorized("invalid token: token is not yet valid")
        if times["iat"] is not None and now + leeway < times["iat"]:
            raise Unauthorized("invalid token: token was issued in the future")
        if claims.get("tid") != self.tenant_id:
            raise Unauthorized("invalid token: wrong tenant id (tid)")

    def _allowed(self, identity: ManagedIdentity) -> None:
        for allowed, value, what in (
                (self.resource_groups, identity.resource_group, "resource group"),
                (self.subscription_ids, identity.subscription_id, "subscription id"),
                (self.object_ids, identity.object_id, "identity object id (oid)")):
            if allowed and value not in allowed:
                raise Unauthorized(f"invalid token: {what} not allowed")

    def authorize_sign(self, token: Token) -> SignOptions:
        # The signature first: nothing in an unverified token is trusted, nor spent.
        issuer = self._signature(token)
        claims = token.claims
        self._check_claims(claims, issuer)
        identity = ManagedIdentity.of(claims)
        self._allowed(identity)
        # one certificate per identity, as step-ca's; without trust on first use nothing is
        # spent, as step-ca's (Azure hands out the same token for a day)
        token_id = (None if self.disable_trust_on_first_use
                    else hashlib.sha256(claims["xms_mirid"].encode()).hexdigest())
        validators: list[CSRValidator] = []
        sans: SANs | None = None
        if self.disable_custom_sans:
            # the name resolves only inside the virtual network, as step-ca's
            sans = SANs(dns=(identity.name,))
            validators = [CommonNameValidator((identity.name,)), SANsValidator(sans)]
        extension = ProvisionerExtension(self.type_id, self.name, self.tenant_id)
        return SignOptions(token_id=token_id, subject=None, sans=sans, claims=self.claims,
                           extension=extension, validators=tuple(validators))

    def public_json(self) -> dict[str, Any]:
        listed = dict(self.config)
        listed.pop("openidConfigurationURL", None)  # where this CA fetches keys is its business
        return listed
