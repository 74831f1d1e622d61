"""A plugin whose dependency is not installed: importing it fails."""

from __future__ import annotations

import stepca_fake_dependency_that_is_not_installed  # noqa: F401

from stepca import hookimpl


@hookimpl
def stepca_provisioner_types() -> list[type]:
    return []
