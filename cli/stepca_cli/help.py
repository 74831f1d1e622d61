"""step's help wired into click: ``-h/--help``, usage lines, ``step help`` and ``step
completion``. The pages themselves are built and rendered by :mod:`stepca_cli.helppage`,
imported only when help is shown: every command imports this module, few show help."""

from __future__ import annotations

import types

import click

from stepca_cli.errors import StepError
from stepca_cli.lazy import LazyCommands

PROG = "step"


# -- wiring into click -----------------------------------------------------------------------------

def _words(ctx: click.Context) -> list[str]:
    names = []
    while ctx is not None:
        names.append(ctx.info_name or ctx.command.name or "")
        ctx = ctx.parent  # type: ignore[assignment]
    names[-1] = PROG  # the root's info_name is whatever the launcher called it
    return names[::-1]


def _get_help(self: click.Command, ctx: click.Context) -> str:
    from stepca_cli.helppage import render

    return render(self, _words(ctx))


def _get_usage(self: click.Command, ctx: click.Context) -> str:
    from stepca_cli.helppage import inline, usage_line, wrap

    text = inline(usage_line(self, _words(ctx)), color=False)
    return "\n".join(wrap("Usage: " + text, 0, len("Usage: ")))


def install(command: click.Command) -> None:
    """Give ``command`` and its subcommands step's help layout: those loaded now, and those a
    lazy group loads later (or a plugin adds), as they come."""
    command.get_help = types.MethodType(_get_help, command)  # type: ignore[method-assign]
    command.get_usage = types.MethodType(_get_usage, command)  # type: ignore[method-assign]
    if not isinstance(command, click.Group):
        return
    commands = command.commands
    if isinstance(commands, LazyCommands):
        commands.on_load = install
        subcommands = commands.loaded().values()
    else:
        subcommands = commands.values()
    for sub in subcommands:
        install(sub)


# -- `step help` and `step completion` -------------------------------------------------------------

@click.command(name="help")
@click.argument("names", metavar="[COMMAND]", nargs=-1)
@click.option("--markdown", "markdown_dir", metavar="DIR",
              help="Write the help of the command and all its subcommands as Markdown files "
                   "under DIR (one file per command, and index.md).")
@click.pass_context
def help_command(ctx: click.Context, names: tuple[str, ...], markdown_dir: str | None) -> None:
    """display help for a command"""
    from pathlib import Path

    from stepca_cli.helppage import export_markdown, render, resolve

    root = ctx.find_root().command
    words, command = resolve(root, names)
    if markdown_dir:
        written = export_markdown(command, words, Path(markdown_dir))
        click.echo(f"Wrote {len(written)} files to {markdown_dir}.", err=True)
        return
    click.echo(render(command, words))


SHELLS = ("bash", "zsh", "fish")


@click.command(name="completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """print the shell completion script"""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    if completer is None:  # pragma: no cover - click ships all three
        raise StepError(f"shell '{shell}' is not supported")
    # the script calls `step` back with _STEP_COMPLETE set; click's main() answers it
    script = completer(ctx.find_root().command, {}, PROG, "_STEP_COMPLETE").source()
    click.echo(script)


COMMANDS = [help_command, completion_command]
