"""The plugins of one ``step`` run, loaded the first time something needs them (decision 0041):
a command that asks a provisioner plugin for a token or for its flags, or the root group when
it must know every command name (``step --help``, an unknown name). The other commands start
without pluggy, entry points or any plugin's import. They are loaded lazily (decision 0043):
``step`` asks plugins for commands and clients, never for the classes the CA uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from stepca.plugins import Plugins


def plugins_for(ctx: click.Context | None) -> Plugins:
    """The run's plugins, kept as the root context's object once loaded; a plugin that failed
    to load is reported on stderr as a warning when they are loaded."""
    root = ctx.find_root() if ctx is not None else None
    if root is not None and root.obj is not None:
        return root.obj  # type: ignore[no-any-return]
    from stepca.plugins import Plugins

    plugins = Plugins.load(lazy=True)
    for error in plugins.load_errors:
        click.echo(f"warning: {error}", err=True)
    if root is not None:
        root.obj = plugins
    return plugins
