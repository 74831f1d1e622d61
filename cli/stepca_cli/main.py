"""The ``step`` command."""

from __future__ import annotations

import os
import sys

import click

from stepca_cli.commands import (  # noqa: F401
    ca, certificate, context, crl, crypto, lifecycle, misc, oauth)
from stepca_cli.errors import StepError
from stepca_cli.help import COMMANDS as HELP_COMMANDS
from stepca_cli.help import install as install_help


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(misc.version_text())  # step --version prints what step version prints
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print the version and exit.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """plumbing for distributed systems"""
    plugins = ctx.obj
    if plugins is not None and ctx.invoked_subcommand != "plugins":  # it lists them itself
        for error in plugins.load_errors:
            click.echo(f"warning: {error}", err=True)


cli.add_command(ca.ca)
cli.add_command(certificate.certificate)
cli.add_command(crypto.crypto)
cli.add_command(crl.crl)
cli.add_command(context.context)
cli.add_command(oauth.oauth)


def _base64_alias() -> None:
    from stepca_cli.crypto_misc import base64_cmd

    cli.add_command(base64_cmd, "base64")  # step has it at the top level too


_base64_alias()
for command in misc.COMMANDS:
    cli.add_command(command)
for command in HELP_COMMANDS:
    cli.add_command(command)
install_help(cli)


def main() -> None:
    from stepca.plugins import Plugins

    try:
        plugins = Plugins.load()
        plugins.hook.stepca_cli_commands(cli=cli)
        install_help(cli)  # again: plugins' commands get step's help layout too
        cli.main(standalone_mode=False, prog_name="step", obj=plugins)
    except StepError as exc:
        if str(exc):
            click.echo(str(exc), err=True)
        if os.environ.get("STEPDEBUG") == "1":
            raise
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
