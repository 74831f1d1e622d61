"""stepca-gcp: the GCP provisioner plugin, CA side and client side."""

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

__all__ = ["GCPProvisioner"]


def __getattr__(name: str) -> Any:
    if name == "GCPProvisioner":
        from stepca_gcp.provisioner import GCPProvisioner

        return GCPProvisioner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    # imported here: step registers every plugin for its commands and needs no provisioner
    from stepca_gcp.provisioner import GCPProvisioner

    return [GCPProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: google-auth is for the instances that ask, not for step --help
    from stepca_gcp.client import GCPClient

    return GCPClient


ADD_OPTIONS = (
    ProvisionerOption("gcp-service-account", "serviceAccounts", "list",
                      "A Google service account email or id allowed to get certificates; "
                      "repeat for several."),
    ProvisionerOption("gcp-project", "projectIDs", "list",
                      "A Google project id allowed to get certificates; repeat for several."),
    *INSTANCE_IDENTITY_OPTIONS,
)
"""The flags of ``step ca provisioner add --type GCP``, as step's."""


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("GCP", _client, options=ADD_OPTIONS)]
