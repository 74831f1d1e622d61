"""A plugin whose entry module imports its provisioner inside the hook, as the in-tree plugins
do, and that provisioner's dependency is not installed: registering it works, the hook fails."""

from __future__ import annotations

from stepca import hookimpl


@hookimpl
def stepca_provisioner_types() -> list[type]:
    import stepca_fake_dependency_that_is_not_installed  # noqa: F401

    return []
