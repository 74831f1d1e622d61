"""Claims the provisioner type FAKE."""

from __future__ import annotations

from _fake_provisioner import provisioner_class
from stepca import hookimpl


@hookimpl
def stepca_provisioner_types() -> list[type]:
    return [provisioner_class("FAKE")]
