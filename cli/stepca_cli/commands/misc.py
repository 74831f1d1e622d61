"""``step path`` and ``step plugins``."""

from __future__ import annotations

import click

from stepca_cli.context import base_path, step_path


@click.command()
@click.option("--base", is_flag=True, help="Print the base path, ignoring contexts.")
def path(base: bool) -> None:
    """print the configured step path and exit"""
    click.echo(str(base_path() if base else step_path()))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """list the installed stepca plugins and what each provides"""
    import json

    from stepca.plugins import Plugins

    loaded = ctx.obj if isinstance(ctx.obj, Plugins) else Plugins.load()
    infos = loaded.describe()
    if as_json:
        click.echo(json.dumps([{"name": i.name, "distribution": i.distribution,
                                "version": i.version, "provides": list(i.provides)}
                               for i in infos], indent=2))
    else:
        for info in infos:
            click.echo(f"{info.name}  {info.distribution} {info.version}")
            for item in info.provides:
                click.echo(f"    {item}")
    for error in loaded.load_errors:
        click.echo(f"error: {error}", err=True)


COMMANDS = [path, plugins]
