"""A Compute Engine metadata server on 127.0.0.1: the default service account's identity
endpoint (``Metadata-Flavor: Google`` required) answering Google-shaped RS256 ID tokens, and,
standing in for ``https://www.googleapis.com/oauth2/v3/certs``, the JWKS that verifies them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._server import MetadataEmulator, Reply, Request

ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"
IDENTITY_PATH = ACCOUNT_PATH + "identity"
JWKS_PATH = "/oauth2/v3/certs"
ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME = 3600
JWKS_MAX_AGE = 19800  # what Google's certs endpoint sends, give or take


@dataclass(frozen=True)
class GcpInstance:
    project_id: str = "stepca-test-project"
    project_number: int = 123456789012
    zone: str = "us-central1-a"
    instance_id: str = "5520094284131468291"
    instance_name: str = "instance-1"
    instance_creation_timestamp: int = field(default_factory=lambda: int(time.time()))
    # the default service account; None: the instance has none (the identity endpoint is 404)
    service_account_email: str | None = "stepca-test@stepca-test-project.iam.gserviceaccount.com"
    service_account_id: str = "109876543210987654321"


class GcpMetadataEmulator(MetadataEmulator):
    """``issued_at`` (Unix seconds) backdates the tokens served, for expired ones;
    ``identity_status`` other than 200 makes the identity endpoint fail with that status."""

    def __init__(self, instance: GcpInstance | None = None) -> None:
        super().__init__()
        self.instance = instance or GcpInstance()
        self.issued_at: int | None = None
        self.identity_status = 200

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def identity_token(self, audience: str, full: bool = True, issued_at: int | None = None,
                       claims: Mapping[str, Any] | None = None, **changes: Any) -> str:
        """The ID token the identity endpoint answers (``format=full`` when ``full``), with
        ``changes`` to the instance (a ``google.compute_engine`` field set to None is left
        out) and ``claims`` replacing top-level claims (None: left out); signed by ``forger``
        when one is set."""
        instance = replace(self.instance, **changes)
        now = issued_at if issued_at is not None else (self.issued_at or int(time.time()))
        token: dict[str, Any] = {
            "iss": ISSUER, "aud": audience, "azp": instance.service_account_id,
            "sub": instance.service_account_id, "iat": now, "exp": now + TOKEN_LIFETIME}
        if full:
            engine = {"instance_creation_timestamp": instance.instance_creation_timestamp,
                      "instance_id": instance.instance_id,
                      "instance_name": instance.instance_name,
                      "project_id": instance.project_id,
                      "project_number": instance.project_number, "zone": instance.zone}
            token |= {"email": instance.service_account_email, "email_verified": True,
                      "google": {"compute_engine": {
                          k: v for k, v in engine.items() if v is not None}}}
        for name, value in (claims or {}).items():
            if value is None:
                token.pop(name, None)
            else:
                token[name] = value
        return self.active_key.sign_jwt(token, kid=self.signer.kid)

    def answer(self, request: Request) -> Reply:
        if request.path == JWKS_PATH:
            return self._keys_reply(self.public_jwks(), f"public, max-age={JWKS_MAX_AGE}, "
                                                        "must-revalidate, no-transform")
        flavor = (("Metadata-Flavor", "Google"),)
        proxied = "x-forwarded-for" in request.headers  # the server refuses proxied requests
        if request.headers.get("metadata-flavor") != "Google" or proxied:
            return Reply(403, b"Missing required header: Metadata-Flavor\n", headers=flavor)
        if request.path not in (ACCOUNT_PATH, IDENTITY_PATH) or request.method != "GET":
            return Reply(404, b"Not Found\n", headers=flavor)
        if self.instance.service_account_email is None:
            return Reply(404, b"No service account is attached to this instance\n",
                         headers=flavor)
        if request.path == ACCOUNT_PATH:  # google-auth reads it (recursive=true) first
            return Reply.json(200, {
                "aliases": ["default"], "email": self.instance.service_account_email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}, *flavor)
        audience = request.query.get("audience")
        if not audience:
            return Reply(400, b"non-empty audience parameter required\n", headers=flavor)
        if self.identity_status != 200:
            return Reply(self.identity_status, b"Emulated failure of the identity endpoint\n"
                         b"(identity_status)\n", headers=flavor)
        token = self.identity_token(audience, full=request.query.get("format") == "full")
        return Reply(200, token.encode(), "text/html", flavor)


__all__ = ["GcpInstance", "GcpMetadataEmulator"]
