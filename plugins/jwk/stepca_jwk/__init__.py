"""stepca-jwk: the JWK provisioner plugin."""

from __future__ import annotations

from stepca import hookimpl
from stepca.provisioner import Provisioner
from stepca_jwk.provisioner import JWKProvisioner

__all__ = ["JWKProvisioner"]


@hookimpl
def stepca_provisioner_types() -> list[type[Provisioner]]:
    return [JWKProvisioner]
