"""``step path``, ``step version`` and ``step plugins``."""

from __future__ import annotations

import click


@click.command()
@click.option("--base", is_flag=True, help="Print the base path, ignoring contexts.")
@click.option("--profile", is_flag=True,
              help="Print the folder of the current context's profile (the base path when no "
                   "context is current).")
def path(base: bool, profile: bool) -> None:
    """print the configured step path and exit"""
    from stepca_cli.context import base_path, current_context, step_path

    if base:
        click.echo(str(base_path()))
    elif profile:
        context = current_context()
        click.echo(str(context.profile_path if context else base_path()))
    else:
        click.echo(str(step_path()))


# Go's names for the platform, as step prints them
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "i386": "386", "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def version_text() -> str:
    """step's two lines, with our own name and version where step prints its own; no release
    date is recorded in a Python distribution, so it says N/A (step's own "not set" value)."""
    import platform
    import sys

    from stepca import __version__

    machine = platform.machine().lower()
    system = sys.platform if sys.platform != "win32" else "windows"
    return (f"stepca CLI/{__version__} ({system}/{_GOARCH.get(machine, machine)})\n"
            "Release Date: N/A")


@click.command()
def version() -> None:
    """display the current version of the cli"""
    click.echo(version_text())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(as_json: bool) -> None:
    """list the installed stepca plugins and what each provides"""
    import json

    from stepca.plugins import Plugins

    # as the CA loads them, so that a plugin whose classes cannot be imported is an error here
    # too (it lists the load errors itself)
    loaded = Plugins.load()
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


COMMANDS = [path, plugins, version]
