"""stepca-aws: the AWS provisioner plugin, CA side and client side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepca import hookimpl
from stepca.provisioner import Provisioner
from stepca.provisioner_client import ClientRegistration
from stepca_aws.provisioner import AWSProvisioner

if TYPE_CHECKING:
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["AWSProvisioner"]


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    return [AWSProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: botocore is for the instances that ask, not for step --help
    from stepca_aws.client import AWSClient

    return AWSClient


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("AWS", _client)]
