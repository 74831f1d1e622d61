"""Azure's instance metadata service (IMDS) on 127.0.0.1: the managed identity token endpoint
(``Metadata: true`` required) answering an RS256 access token with ``xms_mirid``, the
``azEnvironment`` step asks for, and, standing in for ``login.microsoftonline.com``, the
tenant's OpenID discovery document and JWKS."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from ._server import MetadataEmulator, Reply, Request

TOKEN_PATH = "/metadata/identity/oauth2/token"
ENVIRONMENT_PATH = "/metadata/instance/compute/azEnvironment"
JWKS_PATH = "/common/discovery/keys"
TOKEN_LIFETIME = 86399  # managed identity tokens live a day


@dataclass(frozen=True)
class AzureInstance:
    tenant_id: str = "b17c217c-84db-43f0-babd-e06a71083cda"
    subscription_id: str = "dc760a01-2886-4a84-9abc-f3508e0f2f3f"
    resource_group: str = "stepca-test"
    vm_name: str = "instance-1"
    object_id: str = "2cf5e7a4-7aa7-4c2f-9e3b-5c0b0e8c9a11"  # the identity's principal (oid)
    client_id: str = "7e8bc0ae-8a4d-4c0c-b8c0-e0f7a3e3c2b1"
    environment: str = "AzurePublicCloud"

    @property
    def mirid(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
                f"/providers/Microsoft.Compute/virtualMachines/{self.vm_name}")

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"


class AzureImdsEmulator(MetadataEmulator):
    """``issued_at`` (Unix seconds) backdates the tokens served, for expired ones;
    ``identity_status`` other than 200 makes the token endpoint answer that error, as IMDS
    answers 400 on a VM without a managed identity."""

    def __init__(self, instance: AzureInstance | None = None) -> None:
        super().__init__()
        self.instance = instance or AzureInstance()
        self.issued_at: int | None = None
        self.identity_status = 200

    def discovery_url(self, tenant_id: str | None = None) -> str:
        """Where a CA configured with this emulator finds the tenant's issuer and keys."""
        tenant = tenant_id or self.instance.tenant_id
        return f"{self.url}/{tenant}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def access_token(self, resource: str, issued_at: int | None = None, **changes: Any) -> str:
        """The managed identity token for ``resource``, with ``changes`` to the instance;
        signed by ``forger`` when one is set."""
        instance = replace(self.instance, **changes)
        now = issued_at if issued_at is not None else (self.issued_at or int(time.time()))
        claims = {
            "aud": resource, "iss": instance.issuer, "iat": now, "nbf": now,
            "exp": now + TOKEN_LIFETIME, "aio": secrets.token_urlsafe(24),
            "appid": instance.client_id, "appidacr": "2", "idp": instance.issuer,
            "oid": instance.object_id, "rh": secrets.token_urlsafe(24), "sub": instance.object_id,
            "tid": instance.tenant_id, "uti": secrets.token_urlsafe(16), "ver": "1.0",
            "xms_mirid": instance.mirid}
        return self.active_key.sign_jwt(claims, kid=self.signer.kid)

    def answer(self, request: Request) -> Reply:
        if request.path == JWKS_PATH:
            return self._keys_reply(self.public_jwks(), "max-age=86400, private")
        if request.path.endswith("/.well-known/openid-configuration"):
            return self._discovery(request.path.split("/")[1])
        if "x-forwarded-for" in request.headers:
            return Reply.json(400, {"error": "invalid_request",
                                    "error_description": "Request is not allowed"})
        if request.headers.get("metadata", "").lower() != "true":
            return Reply.json(400, {"error": "invalid_request",
                                    "error_description": "Required metadata header not specified"})
        if request.path == ENVIRONMENT_PATH:
            return Reply(200, self.instance.environment.encode())
        if request.path != TOKEN_PATH:
            return Reply.json(404, {"error": "not_found"})
        if self.identity_status != 200:
            return Reply.json(self.identity_status, {"error": "invalid_request",
                                                     "error_description": "Identity not found"})
        resource = request.query.get("resource")
        if not request.query.get("api-version") or not resource:
            return Reply.json(400, {"error": "invalid_request",
                                    "error_description": "Required query variable not specified"})
        now = self.issued_at or int(time.time())
        return Reply.json(200, {
            "access_token": self.access_token(resource), "client_id": self.instance.client_id,
            "expires_in": str(TOKEN_LIFETIME), "expires_on": str(now + TOKEN_LIFETIME),
            "ext_expires_in": str(TOKEN_LIFETIME), "not_before": str(now),
            "resource": resource, "token_type": "Bearer"})

    def _discovery(self, tenant: str) -> Reply:
        if tenant != self.instance.tenant_id:
            return Reply.json(400, {"error": "invalid_tenant"})
        return self._keys_reply({
            "issuer": self.instance.issuer, "jwks_uri": self.jwks_url,
            "token_endpoint": f"{self.url}/{tenant}/oauth2/token",
            "authorization_endpoint": f"{self.url}/{tenant}/oauth2/authorize",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token",
                                         "token"]},
            "max-age=86400, private")


__all__ = ["AzureImdsEmulator", "AzureInstance"]
