"""stepca-jwk: the JWK provisioner plugin, CA side and client side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepca import hookimpl
from stepca.provisioner_client import ClientRegistration, ProvisionerOption

if TYPE_CHECKING:
    from stepca.provisioner import Provisioner
    from stepca.provisioner_client import ProvisionerClient

__all__ = ["JWKProvisioner"]


def __getattr__(name: str) -> Any:
    if name == "JWKProvisioner":
        from stepca_jwk.provisioner import JWKProvisioner

        return JWKProvisioner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    # imported here: step registers every plugin for its commands and needs no provisioner
    from stepca_jwk.provisioner import JWKProvisioner

    return [JWKProvisioner]


def _client() -> type[ProvisionerClient]:
    # imported on use: the CA never needs it, and step --help should not pay for it
    from stepca_jwk.client import JWKClient

    return JWKClient


ADD_OPTIONS = (
    # no ca.json key of their own: the client's edit_entry makes "key" and "encryptedKey"
    ProvisionerOption("create", None, "switch",
                      "Create a new EC P-256 key pair for the provisioner; its private key is "
                      "kept in ca.json, encrypted with the password."),
    ProvisionerOption("public-key", None, "file",
                      "The file with the provisioner's public key (a JWK or a PEM key); its "
                      "'kid', or else its thumbprint, names it."),
    ProvisionerOption("private-key", None, "file",
                      "The file with the provisioner's private key to keep in ca.json: a JWE "
                      "(kept as it is), or a JWK or unencrypted PEM key (encrypted with the "
                      "password). With update, --private-key \"\" removes it."),
    ProvisionerOption("password-file", None, "file",
                      "The file with the password to encrypt the provisioner's private key."),
)
"""The flags of ``step ca provisioner add --type JWK``, as step's."""


@hookimpl
def stepca_provisioner_clients() -> list[ClientRegistration]:
    return [ClientRegistration("JWK", _client, options=ADD_OPTIONS)]
