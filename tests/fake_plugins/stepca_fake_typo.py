"""Implements a hook whose name is misspelled (stepca_provisioner_type without the s)."""

from __future__ import annotations

from stepca import hookimpl


@hookimpl
def stepca_provisioner_type() -> list[type]:
    return []
