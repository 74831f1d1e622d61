"""stepca-azure: the Azure provisioner plugin, CA side and client side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepca import hookimpl
from stepca.provisioner_client import (
    INSTANCE_IDENTITY_OPTIONS,
    ClientRegistration,
    ProvisionerOption,
)

if TYPE_CHECKING:
    from stepca.provisioner import Provisioner
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["AzureProvisioner"]


def __getattr__(name: str) -> Any:
    if name == "AzureProvisioner":
        from stepca_azure.provisioner import AzureProvisioner

        return AzureProvisioner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    # imported here: step registers every plugin for its commands and needs no provisioner
    from stepca_azure.provisioner import AzureProvisioner

    return [AzureProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: azure-identity is for the VMs that ask, not for step --help
    from stepca_azure.client import AzureClient

    return AzureClient


ADD_OPTIONS = (
    ProvisionerOption("azure-tenant", "tenantID", "text",
                      "The Microsoft Entra tenant id whose managed identity tokens are "
                      "trusted.", required=True),
    ProvisionerOption("azure-resource-group", "resourceGroups", "list",
                      "A resource group whose VMs may get certificates; repeat for several."),
    ProvisionerOption("azure-subscription-id", "subscriptionIDs", "list",
                      "A subscription whose VMs may get certificates; repeat for several."),
    ProvisionerOption("azure-object-id", "objectIDs", "list",
                      "A managed identity's object id allowed to get certificates; repeat for "
                      "several."),
    ProvisionerOption("azure-audience", "audience", "text",
                      "The audience of the tokens (default https://management.azure.com/)."),
    # Azure's tokens do not say when the VM was made: no --instance-age, as step's
    *(o for o in INSTANCE_IDENTITY_OPTIONS if o.flag != "instance-age"),
)
"""The flags of ``step ca provisioner add --type Azure``, as step's."""


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("Azure", _client, options=ADD_OPTIONS)]
