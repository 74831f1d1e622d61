"""stepca-oidc: the OpenID Connect (single sign-on) provisioner plugin, CA side and client
side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepca import hookimpl
from stepca.provisioner_client import ClientRegistration, ProvisionerOption

if TYPE_CHECKING:
    from stepca.provisioner import Provisioner
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["OIDCProvisioner"]


def __getattr__(name: str) -> Any:
    if name == "OIDCProvisioner":
        from stepca_oidc.provisioner import OIDCProvisioner

        return OIDCProvisioner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    # imported here: step registers every plugin for its commands and needs no provisioner
    from stepca_oidc.provisioner import OIDCProvisioner

    return [OIDCProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: the browser flow is for the people who sign in, not for step --help
    from stepca_oidc.client import OIDCClient

    return OIDCClient


ADD_OPTIONS = (
    ProvisionerOption("client-id", "clientID", "text",
                      "The client id the OpenID provider issued for step.", required=True),
    ProvisionerOption("client-secret", "clientSecret", "text",
                      "The client secret the OpenID provider issued for step (step shows it "
                      "to every user: it is no secret)."),
    ProvisionerOption("configuration-endpoint", "configurationEndpoint", "text",
                      "The OpenID provider's discovery document URL (.well-known/"
                      "openid-configuration).", required=True),
    ProvisionerOption("admin", "admins", "list",
                      "An email or a group whose members may request any name and revoke; "
                      "repeat for several."),
    ProvisionerOption("domain", "domains", "list",
                      "An email domain whose users may get certificates; repeat for several."),
    ProvisionerOption("group", "groups", "list",
                      "A group (the ID token's groups claim) whose members may get "
                      "certificates; repeat for several."),
    ProvisionerOption("listen-address", "listenAddress", "text",
                      "The loopback host:port step listens on for the provider's redirect."),
    ProvisionerOption("tenant-id", "tenantID", "text",
                      "The tenant id that replaces {tenantid} in the provider's issuer "
                      "(Microsoft Entra)."),
    ProvisionerOption("scope", "scopes", "list",
                      "A scope step asks the provider for; repeat for several."),
    ProvisionerOption("auth-param", "authParams", "list",
                      "A key=value parameter step adds to the authorization request; repeat "
                      "for several."),
)
"""The flags of ``step ca provisioner add --type OIDC``, as step's."""


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("OIDC", _client, options=ADD_OPTIONS)]
