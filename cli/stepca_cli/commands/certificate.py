"""``step certificate``."""

from __future__ import annotations

import click

from stepca_cli.commands.inspect import fingerprint, inspect


@click.group()
def certificate() -> None:
    """create, revoke, validate, bundle, and otherwise manage certificates"""


certificate.add_command(inspect)
certificate.add_command(fingerprint)


def _lifecycle() -> None:
    from stepca_cli.commands.lifecycle import needs_renewal

    certificate.add_command(needs_renewal)


_lifecycle()


def _tools() -> None:
    from stepca_cli.commands.certificate_tools import COMMANDS

    for command in COMMANDS:
        certificate.add_command(command)


_tools()
