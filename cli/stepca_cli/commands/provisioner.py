"""``step ca provisioner``: list the CA's provisioners, and add, update and remove them in
ca.json. A module of its own, loaded when the group is used (decision 0043): its flags come
from the provisioner plugins, and the other ``step ca`` commands need none of that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from stepca_cli.commands.ca import ca_url_option, client_for, root_option
from stepca_cli.context import StepCommand, step_path
from stepca_cli.errors import StepError
from stepca_cli.plugin_loading import plugins_for
from stepca_cli.provisioner_config import PluginOptionsCommand


@click.group()
def provisioner() -> None:
    """create and manage the CA provisioners"""


@provisioner.command(name="list", cls=StepCommand)
@ca_url_option
@root_option
@click.pass_context
def provisioner_list(ctx: click.Context, ca_url: str | None, root: str | None) -> None:
    """list provisioners configured in the CA"""
    click.echo(json.dumps(client_for(ctx, ca_url, root).provisioners(), indent="   "))


ca_config_option = click.option(
    "--ca-config", metavar="FILE",
    help="The certificate authority configuration file. Defaults to "
         "$(step path)/config/ca.json")


def _ca_config_path(ca_config: str | None) -> Path:
    return Path(ca_config) if ca_config else step_path() / "config" / "ca.json"


@provisioner.command(name="add", cls=PluginOptionsCommand)
@click.argument("name")
@click.option("--type", "kind", default="JWK", metavar="TYPE", show_default=True,
              help="The type of provisioner to create (case-insensitive): one an installed "
                   "plugin provides, e.g. JWK, AWS, GCP, Azure.")
@ca_config_option
@click.pass_context
def provisioner_add(ctx: click.Context, name: str, kind: str, ca_config: str | None,
                    **values: Any) -> None:
    """add a provisioner

    Adds a provisioner to the CA configuration (ca.json); the CA uses it once reloaded. The
    flags of each type come from the plugin that provides it (step plugins)."""
    from stepca_cli.provisioner_config import add_provisioner, report_written

    path = _ca_config_path(ca_config)
    add_provisioner(plugins_for(ctx), path, name, kind, values, command=ctx.command_path)
    report_written(path)


@provisioner.command(name="update", cls=PluginOptionsCommand, updating=True)
@click.argument("name")
@click.option("--name", "new_name", metavar="NAME", help="The new name of the provisioner.")
@ca_config_option
@click.pass_context
def provisioner_update(ctx: click.Context, name: str, new_name: str | None,
                       ca_config: str | None, **values: Any) -> None:
    """update a provisioner

    Changes the given settings of a provisioner in the CA configuration (ca.json), keeping the
    others; the CA uses them once reloaded."""
    from stepca_cli.provisioner_config import report_written, update_provisioner

    path = _ca_config_path(ca_config)
    update_provisioner(plugins_for(ctx), path, name, values, new_name=new_name,
                       command=ctx.command_path)
    report_written(path)


@provisioner.command(name="remove", cls=StepCommand)
@click.argument("name")
@click.option("--kid", metavar="KID",
              help="The key id of the JWK provisioner to remove, when several share the name.")
@click.option("--client-id", metavar="ID",
              help="The client id of the OIDC provisioner to remove, when several share the "
                   "name.")
@ca_config_option
def provisioner_remove(name: str, kid: str | None, client_id: str | None,
                       ca_config: str | None) -> None:
    """remove a provisioner

    Removes a provisioner from the CA configuration (ca.json); once the CA is reloaded, its
    tokens are refused and its certificates no longer renew."""
    from stepca_cli.provisioner_config import remove_provisioner, report_written

    path = _ca_config_path(ca_config)
    remove_provisioner(path, name, kid=kid, client_id=client_id)
    report_written(path)


@provisioner.command(name="jwe-key", cls=StepCommand)
@click.argument("kid")
@ca_url_option
@root_option
@click.pass_context
def provisioner_jwe_key(ctx: click.Context, kid: str, ca_url: str | None,
                        root: str | None) -> None:
    """retrieve and print a provisioning key in the CA"""
    from urllib.parse import quote

    client = client_for(ctx, ca_url, root)
    try:
        key = client.get_json(f"/provisioners/{quote(kid, safe='')}/encrypted-key").get("key")
    except StepError as exc:
        raise StepError(f"error getting the provisioning key: {exc}") from None
    if not isinstance(key, str) or not key:
        raise StepError("error getting the provisioning key: the CA sent no key")
    click.echo(key)
