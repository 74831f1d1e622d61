"""stepca-azure: the Azure provisioner plugin, CA side and client side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepca import hookimpl
from stepca.provisioner import Provisioner
from stepca.provisioner_client import ClientRegistration
from stepca_azure.provisioner import AzureProvisioner

if TYPE_CHECKING:
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["AzureProvisioner"]


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    return [AzureProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: azure-identity is for the VMs that ask, not for step --help
    from stepca_azure.client import AzureClient

    return AzureClient


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("Azure", _client)]
