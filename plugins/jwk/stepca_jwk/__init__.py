"""stepca-jwk: the JWK provisioner plugin, CA side and client side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepca import hookimpl
from stepca.provisioner import Provisioner
from stepca.provisioner_client import ClientRegistration
from stepca_jwk.provisioner import JWKProvisioner

if TYPE_CHECKING:
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["JWKProvisioner"]


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    return [JWKProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: the CA never needs it, and step --help should not pay for it
    from stepca_jwk.client import JWKClient

    return JWKClient


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("JWK", _client)]
