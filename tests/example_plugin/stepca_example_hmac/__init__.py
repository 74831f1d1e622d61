"""stepca-example-hmac: a provisioner whose tokens are HS256 JWTs signed with a shared secret.

This module is the pluggy plugin the entry point names: it only holds ``@hookimpl`` functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepca import hookimpl
from stepca.provisioner_client import ClientRegistration
from stepca_example_hmac.provisioner import HMACProvisioner, sign_token

if TYPE_CHECKING:
    import click

    from stepca.provisioner import Provisioner
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["HMACProvisioner", "sign_token"]


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    return [HMACProvisioner]


@hookimpl
def stepca_cli_commands(cli: click.Group) -> None:
    # imported here: the CA server never needs the command line part
    from stepca_example_hmac.cli import hmac_group

    cli.add_command(hmac_group)


def _client() -> type[ProvisionerClient]:
    from stepca_example_hmac.client import HMACClient  # only when an HMAC provisioner is used

    return HMACClient


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("HMAC", _client)]
