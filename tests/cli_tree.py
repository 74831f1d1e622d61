"""Print every command path of ``step`` with its ``--help`` page and its parameters, as JSON;
run in a fresh interpreter by tests/test_cli_startup.py.

``eager``: every subcommand is imported first, so each page is rendered from the whole tree, as
step rendered them before its commands were loaded lazily; it also names the click commands
that a ``stepca_cli`` module defines but the tree does not reach. ``lazy``: each page is
rendered as a fresh ``step`` meets it; a group's page comes before any of its subcommands is
imported, so its COMMANDS table comes from the lazy entries' names and one-line help."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import pkgutil
import sys
from typing import Any

import click

import stepca_cli
from stepca_cli import helppage as helpmod
from stepca_cli.main import cli, main


def page(words: list[str]) -> str:
    """What ``step <words…> --help`` prints."""
    out = io.StringIO()
    sys.argv = [*words, "--help"]
    with contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
    return out.getvalue()


def parameters(command: click.Command) -> list[dict[str, Any]]:
    return [{"kind": type(p).__name__, "name": p.name, "opts": p.opts,
             "secondary_opts": p.secondary_opts, "type": repr(p.type), "required": p.required,
             "multiple": p.multiple, "nargs": p.nargs,
             "hidden": getattr(p, "hidden", False), "default": repr(p.default)}
            for p in command.params]


def unreached() -> list[str]:
    """Commands defined at the top level of a stepca_cli module (or in its COMMANDS list)
    that the tree does not hold: a lazy table that forgot one would drop it silently."""
    reached = {id(command) for _, command in helpmod.walk(cli)}
    missing = []
    for info in pkgutil.walk_packages(stepca_cli.__path__, "stepca_cli."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            values = value if name == "COMMANDS" else [value]
            for item in values:
                if isinstance(item, click.Command) and id(item) not in reached:
                    missing.append(f"{info.name}:{name}")
    return sorted(set(missing))


def main_() -> None:
    mode = sys.argv[1]
    report: dict[str, Any] = {}
    if mode == "eager":
        tree = list(helpmod.walk(cli))  # imports every subcommand's module
        report["unreached"] = unreached()
        # a lazy entry's name is the name its command was written with
        report["misnamed"] = [" ".join(words) for words, command in tree[1:]
                              if command.name != words[-1]]
    pages = {}
    # depth first: a group is yielded (and its page rendered) before its subcommands are
    # looked up, which is what imports them
    for words, command in helpmod.walk(cli):
        text = page(words)
        pages[" ".join(words)] = {"help": text, "parameters": parameters(command)}
    report["pages"] = pages
    sys.stdout.write(json.dumps(report))


if __name__ == "__main__":
    main_()
