"""Prompts and status lines, always on stderr so stdout carries only data (step's rule)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stepca_cli.errors import StepError

CHECK = "✔"


def status(name: str, value: str) -> None:
    """``✔ Name: value`` on stderr."""
    click.echo(f"{CHECK} {name}: {value}", err=True)


def info(message: str = "") -> None:
    click.echo(message, err=True)


def has_terminal() -> bool:
    return sys.stdin.isatty()


def ask(question: str, *, flag: str, command: str, default: str | None = None) -> str:
    """Ask on the terminal; without one, fail naming the flag that answers the question."""
    if not has_terminal():
        raise StepError(f"'{command}' requires the '--{flag}' flag (no terminal to ask on)")
    return str(click.prompt(question, default=default, err=True, show_default=False)).strip()


def ask_password(label: str, *, flag: str, command: str, confirm: bool = False,
                 allow_empty: bool = False) -> bytes:
    if not has_terminal():
        raise StepError(f"'{command}' requires the '--{flag}' flag (no terminal to ask for "
                        "the password on)")
    value = click.prompt(label, hide_input=True, err=True, confirmation_prompt=confirm,
                         default="" if allow_empty else None, show_default=False)
    return str(value).encode()


def read_password_file(path: str | None, flag: str) -> bytes | None:
    """A password file's content, right-trimmed of whitespace as step does."""
    if not path:
        return None
    try:
        return Path(path).read_bytes().rstrip()
    except OSError as exc:
        raise StepError(f"error reading --{flag} {path}: {exc.strerror}") from None


def check_overwrite(path: Path, force: bool) -> None:
    """step's overwrite protection: ask before replacing a file unless ``--force``."""
    if force or not path.exists():
        return
    if not has_terminal():
        raise StepError(f"file {path} already exists: use --force to overwrite it")
    if not click.confirm(f"Would you like to overwrite {path}", err=True):
        raise StepError(f"file {path} already exists")
