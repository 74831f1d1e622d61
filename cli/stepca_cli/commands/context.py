"""``step context``: list, show, select and remove the contexts of ``$STEPPATH``."""

from __future__ import annotations

import json
import shutil

import click

from stepca_cli import ui
from stepca_cli.context import current_context, load_contexts, save_contexts, save_current
from stepca_cli.errors import StepError


@click.group(name="context")
def context() -> None:
    """manage certificate authority contexts"""


@context.command()
@click.option("--json", "as_json", is_flag=True,
              help="Return stringified JSON containing the main attributes of a context.")
def current(as_json: bool) -> None:
    """current returns the name of the current context"""
    chosen = current_context()
    if chosen is None:
        raise StepError("no context selected")
    if as_json:
        click.echo(json.dumps({"name": chosen.name, "authority": chosen.authority,
                               "profile": chosen.profile}, separators=(",", ":")))
    else:
        click.echo(chosen.name)


@context.command(name="list")
def list_contexts() -> None:
    """list available certificate authority contexts"""
    chosen = current_context()
    if chosen is not None:
        click.echo(f"▶ {chosen.name}")
    for name in sorted(load_contexts(), key=str.lower):
        if chosen is None or name != chosen.name:
            click.echo(name)


@context.command(name="select")
@click.argument("name")
def select_context(name: str) -> None:
    """select the default certificate authority context"""
    save_current(name)
    ui.status("Context", name)


@context.command(name="remove")
@click.argument("name")
@click.option("-f", "--force", is_flag=True,
              help="Remove without asking for confirmation.")
def remove(name: str, force: bool) -> None:
    """remove a context and all associated configuration"""
    contexts = load_contexts()
    chosen = current_context()
    if not contexts and chosen is None:
        raise StepError(f"context '{name}' not found - step path context management not "
                        "enabled")
    target = contexts.get(name)
    if target is None:
        raise StepError(f"context '{name}' not found")
    if chosen is not None and chosen.name == name:
        raise StepError("cannot remove current context")
    others = [c for c in contexts.values() if c.name != name]
    # a folder another context still uses stays
    folders = ([target.path] if all(c.authority != target.authority for c in others) else []) \
        + ([target.profile_path] if all(c.profile != target.profile for c in others) else [])
    if not force and folders:
        ui.info("The following directories will be removed:")
        ui.info()
        for folder in folders:
            ui.info(f"  - {folder}")
        ui.info()
        if not ui.has_terminal():
            raise StepError("'step context remove' requires the '--force' flag (no terminal "
                            "to ask on)")
        if not click.confirm(f"Are you sure you want to delete the configuration for context "
                             f"{name} (this cannot be undone!)", err=True):
            raise StepError("context not removed")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    save_contexts({c.name: c for c in others})
