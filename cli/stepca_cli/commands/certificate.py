"""``step certificate``: its subcommands live in three modules, imported as they are used
(``step certificate inspect`` needs none of the others')."""

from __future__ import annotations

import click

from stepca_cli.lazy import Lazy, LazyCommands

_TOOLS = "stepca_cli.commands.certificate_tools"

SUBCOMMANDS = {
    "bundle": Lazy(f"{_TOOLS}:bundle", "bundle a certificate with intermediate certificate(s) "
                                       "needed for certificate path validation"),
    "create": Lazy(f"{_TOOLS}:create", "create a certificate or certificate signing request"),
    "fingerprint": Lazy("stepca_cli.commands.inspect:fingerprint",
                        "print the fingerprint of a certificate"),
    "format": Lazy(f"{_TOOLS}:format_", "reformat certificate (PEM to DER, DER to PEM)"),
    "inspect": Lazy("stepca_cli.commands.inspect:inspect",
                    "print certificate or CSR details in human readable format"),
    "install": Lazy(f"{_TOOLS}:install", "install a root certificate in the supported trust "
                                         "stores"),
    "key": Lazy(f"{_TOOLS}:key", "print public key embedded in a certificate"),
    "lint": Lazy(f"{_TOOLS}:lint", "lint certificate details"),
    "needs-renewal": Lazy("stepca_cli.commands.lifecycle:needs_renewal",
                          "check if a certificate needs to be renewed (exit 0: yes, 1: no, "
                          "2: no file, 255: error)"),
    "p12": Lazy(f"{_TOOLS}:p12", "package a certificate and keys into a .p12 file"),
    "sign": Lazy(f"{_TOOLS}:sign", "sign a certificate signing request (CSR)"),
    "uninstall": Lazy(f"{_TOOLS}:uninstall", "uninstall a root certificate from the supported "
                                             "trust stores"),
    "verify": Lazy(f"{_TOOLS}:verify", "verify a certificate"),
}


@click.group(commands=LazyCommands(SUBCOMMANDS))
def certificate() -> None:
    """create, revoke, validate, bundle, and otherwise manage certificates"""
