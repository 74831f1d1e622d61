"""The ``step`` command.

Its subcommands are named here with their one-line help and imported when used (decision
0041): ``step version`` must not pay for the imports of ``step ca``."""

from __future__ import annotations

import os
import sys

import click

from stepca_cli.errors import StepError
from stepca_cli.help import COMMANDS as HELP_COMMANDS
from stepca_cli.help import install as install_help
from stepca_cli.lazy import Lazy, LazyCommands
from stepca_cli.plugin_loading import plugins_for

BUILTIN_COMMANDS = {
    "base64": Lazy("stepca_cli.crypto_misc:base64_cmd", "encode or decode stdin as base64"),
    "ca": Lazy("stepca_cli.commands.ca:ca", "initialize and manage a certificate authority"),
    "certificate": Lazy("stepca_cli.commands.certificate:certificate",
                        "create, revoke, validate, bundle, and otherwise manage certificates"),
    "context": Lazy("stepca_cli.commands.context:context",
                    "manage certificate authority contexts"),
    "crl": Lazy("stepca_cli.commands.crl:crl",
                "initialize, create, and manage certificate revocation lists"),
    "crypto": Lazy("stepca_cli.commands.crypto:crypto", "useful cryptographic plumbing"),
    "oauth": Lazy("stepca_cli.commands.oauth:oauth",
                  "authorization and single sign-on using OAuth & OIDC"),
    "path": Lazy("stepca_cli.commands.misc:path", "print the configured step path and exit"),
    "plugins": Lazy("stepca_cli.commands.misc:plugins",
                    "list the installed stepca plugins and what each provides"),
    "version": Lazy("stepca_cli.commands.misc:version", "display the current version of the cli"),
}


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from stepca_cli.commands.misc import version_text

        click.echo(version_text())  # step --version prints what step version prints
        ctx.exit()


def _add_plugin_commands() -> None:
    """Plugins add their commands when the root must know every name: a built-in name never
    needs them, so a plugin cannot replace a built-in command."""
    builtin = set(BUILTIN_COMMANDS) | {c.name for c in HELP_COMMANDS}
    collected = click.Group()
    plugins_for(click.get_current_context(silent=True)).hook.stepca_cli_commands(cli=collected)
    for name, command in collected.commands.items():
        if name in builtin:
            click.echo(f"warning: a plugin's command '{name}' is ignored: step has a built-in "
                       "command of that name", err=True)
        else:
            cli.add_command(command, name)


@click.group(commands=LazyCommands(BUILTIN_COMMANDS, more=_add_plugin_commands),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print the version and exit.")
def cli() -> None:
    """plumbing for distributed systems"""


for command in HELP_COMMANDS:
    cli.add_command(command)
install_help(cli)  # and on every command the root or a lazy group loads later


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="step")
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
