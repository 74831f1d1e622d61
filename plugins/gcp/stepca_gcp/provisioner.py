"""The GCP provisioner: a Compute Engine instance's identity token (``format=full``), signed by
Google, authorizes one certificate for that instance (trust on first use), as step-ca's."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stepca.errors import Unauthorized
from stepca.jose import SignatureError, Token, VerifyingKey
from stepca.provisioner import (
    CommonNameValidator,
    CSRValidator,
    Provisioner,
    ProvisionerContext,
    SANsValidator,
    SignOptions,
    check_config_keys,
    check_fragment_audience,
    check_token_claims,
    config_duration,
    config_flag,
    config_strings,
    fragment_lookup_key,
    token_id_of,
)
from stepca.remote_keys import NotReady, RemoteKeySet
from stepca.x509util import SANs, ProvisionerExtension

__all__ = ["GOOGLE_CERTS_URL", "GCPProvisioner", "InstanceIdentity"]

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
MAX_FIELD = 253  # a DNS name's length: instance and project names end up in one
_KNOWN_KEYS = frozenset({"type", "name", "serviceAccounts", "projectIDs", "organizationID",
                         "disableCustomSANs", "disableTrustOnFirstUse", "instanceAge", "claims",
                         "jwksURL"})


@dataclass(frozen=True)
class InstanceIdentity:
    """What ``google.compute_engine`` in a verified token says about the instance."""

    instance_id: str
    instance_name: str
    project_id: str
    zone: str
    created_at: float | None

    @classmethod
    def of(cls, claims: Mapping[str, Any]) -> InstanceIdentity:
        google = claims.get("google")
        engine = google.get("compute_engine") if isinstance(google, dict) else None
        if not isinstance(engine, dict):
            raise Unauthorized("invalid token: google.compute_engine is missing; ask the "
                               "metadata server for format=full")
        fields = {}
        for key in ("instance_id", "instance_name", "project_id", "zone"):
            value = engine.get(key)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD:
                raise Unauthorized(f"invalid token: google.compute_engine.{key} must be a "
                                   f"non-empty string")
            fields[key] = value
        created = engine.get("instance_creation_timestamp")
        if created is not None and (isinstance(created, bool)
                                    or not isinstance(created, (int, float))):
            raise Unauthorized("invalid token: google.compute_engine.instance_creation_timestamp "
                               "is not a number")
        return cls(created_at=created, **fields)

    @property
    def dns_names(self) -> tuple[str, str]:
        """The names GCP's internal DNS gives the instance (zonal and global), as step-ca's."""
        return (f"{self.instance_name}.c.{self.project_id}.internal",
                f"{self.instance_name}.{self.zone}.c.{self.project_id}.internal")




class GCPProvisioner(Provisioner):
    type = "GCP"
    type_id = 3

    def __init__(self, config: Mapping[str, Any], *, context: ProvisionerContext) -> None:
        super().__init__(config, context=context)
        check_config_keys(config, _KNOWN_KEYS)
        if config.get("organizationID") is not None:
            # step-ca 0.19 has no organizationID either; looking a project's organization up
            # would need Google credentials on the CA.
            raise ValueError("'organizationID' is not supported: list the projects in "
                             "'projectIDs'")
        self.service_accounts = config_strings(config, "serviceAccounts")
        self.project_ids = config_strings(config, "projectIDs")
        self.disable_custom_sans = config_flag(config, "disableCustomSANs")
        self.disable_trust_on_first_use = config_flag(config, "disableTrustOnFirstUse")
        self.instance_age = config_duration(config, "instanceAge")
        url = config.get("jwksURL", GOOGLE_CERTS_URL)
        if not isinstance(url, str):
            raise ValueError("'jwksURL' must be a URL")
        self.keys = RemoteKeySet(url, name=f"provisioner '{self.name}'")
        self.keys.start()

    @staticmethod
    def token_lookup_key(token: Token) -> str | None:
        return fragment_lookup_key(token, "gcp")

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        return (f"gcp/{self.name}",)

    def _signature(self, token: Token) -> None:
        kid = token.header.get("kid")
        if token.alg != "RS256" or not isinstance(kid, str):
            raise Unauthorized("invalid token: a GCP identity token is RS256 with a kid")
        try:
            key = self.keys.key(kid)
        except NotReady as exc:
            raise Unauthorized(f"Google's keys are not available yet: {exc}") from None
        except KeyError:
            raise Unauthorized(f"invalid token: no Google key '{kid[:64]}'") from None
        try:
            VerifyingKey(key, "RS256").verify(token)
        except SignatureError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None

    def _service_account(self, claims: Mapping[str, Any]) -> None:
        if not self.service_accounts:
            return
        # the unique id (sub), or the email when Google says it is verified
        if claims.get("sub") in self.service_accounts:
            return
        if claims.get("email") in self.service_accounts and claims.get("email_verified") is True:
            return
        raise Unauthorized("invalid token: service account not allowed")

    def authorize_sign(self, token: Token) -> SignOptions:
        # The signature first: nothing in an unverified token is trusted, nor spent.
        self._signature(token)
        check_token_claims(token, issuer=GOOGLE_ISSUERS, audiences=self.context.audiences,
                           kind="sign", context=self.context)
        check_fragment_audience(token, self.context.audiences, f"gcp/{self.name}")
        claims = token.claims
        self._service_account(claims)
        instance = InstanceIdentity.of(claims)
        if self.project_ids and instance.project_id not in self.project_ids:
            raise Unauthorized("invalid token: project not allowed")
        if self.instance_age is not None and self.instance_age > timedelta(0):
            if instance.created_at is None:
                raise Unauthorized("invalid token: instance_creation_timestamp is required")
            age = self.context.clock().timestamp() - instance.created_at
            if age > self.instance_age.total_seconds():
                raise Unauthorized("invalid token: the instance is older than instanceAge")
        if self.disable_trust_on_first_use:
            token_id = token_id_of(token)
        else:
            # one certificate per instance: the id is the instance's, as step-ca's
            unique = f"gcp/{self.name}.{instance.instance_id}"
            token_id = hashlib.sha256(unique.encode()).hexdigest()
        validators: list[CSRValidator] = []
        sans: SANs | None = None
        if self.disable_custom_sans:
            dns = instance.dns_names
            sans = SANs(dns=dns)
            validators = [CommonNameValidator((instance.instance_name, instance.instance_id,
                                               *dns)),
                          SANsValidator(sans)]
        extension = ProvisionerExtension(
            self.type_id, self.name, str(claims["sub"]),
            ("InstanceID", instance.instance_id, "InstanceName", instance.instance_name))
        return SignOptions(token_id=token_id, subject=None, sans=sans, claims=self.claims,
                           extension=extension, validators=tuple(validators))

    def public_json(self) -> dict[str, Any]:
        listed = dict(self.config)
        listed.pop("jwksURL", None)  # where this CA fetches keys is no client's business
        return listed
