"""A working plugin: one provisioner type and one event hook."""

from __future__ import annotations

from typing import Any

from _fake_provisioner import provisioner_class
from stepca import hookimpl

GoodProvisioner = provisioner_class("GOOD")


@hookimpl
def stepca_provisioner_types() -> list[type]:
    return [GoodProvisioner]


@hookimpl
def stepca_after_sign(certificate: Any) -> None:
    return None
