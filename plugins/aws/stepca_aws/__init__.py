"""stepca-aws: the AWS provisioner plugin, CA side and client side."""

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

__all__ = ["AWSProvisioner"]


def __getattr__(name: str) -> Any:
    if name == "AWSProvisioner":
        from stepca_aws.provisioner import AWSProvisioner

        return AWSProvisioner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    # imported here: step registers every plugin for its commands and needs no provisioner
    from stepca_aws.provisioner import AWSProvisioner

    return [AWSProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: botocore is for the instances that ask, not for step --help
    from stepca_aws.client import AWSClient

    return AWSClient


ADD_OPTIONS = (
    ProvisionerOption("aws-account", "accounts", "list",
                      "An AWS account id allowed to get certificates; repeat for several."),
    ProvisionerOption("iid-roots", "iidRoots", "file",
                      "A PEM file with the certificates that verify instance identity "
                      "documents, instead of AWS's own."),
    *INSTANCE_IDENTITY_OPTIONS,
)
"""The flags of ``step ca provisioner add --type AWS``, as step's."""


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("AWS", _client, options=ADD_OPTIONS)]
