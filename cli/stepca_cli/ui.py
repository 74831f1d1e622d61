"""Prompts and status lines, always on stderr so stdout carries only data (step's rule)."""

from __future__ import annotations

import os
import secrets
import string
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


def new_password(label: str, *, flag: str, command: str) -> bytes:
    """A password for something new, asked with ``label`` (which says "[leave empty and we'll
    generate one]"); left empty, a random one is generated and shown once, as step does."""
    password = ask_password(label, flag=flag, command=command, allow_empty=True)
    if not password:
        alphabet = string.ascii_letters + string.digits
        password = "".join(secrets.choice(alphabet) for _ in range(32)).encode()
        status("Password", password.decode())
    return password


def read_password_file(path: str | None, flag: str) -> bytes | None:
    """A password file's content, right-trimmed of whitespace as step does."""
    if not path:
        return None
    try:
        password = Path(path).read_bytes().rstrip()
    except OSError as exc:
        raise StepError(f"error reading --{flag} {path}: {exc.strerror}") from None
    if not password:  # else taken as "no password", and the key as not encrypted
        raise StepError(f"error reading --{flag} {path}: the file is empty")
    return password


def check_overwrite(path: Path, force: bool) -> None:
    """step's overwrite protection: ask before replacing a file unless ``--force``."""
    if force or not path.exists():
        return
    if not has_terminal():
        raise StepError(f"file {path} already exists: use --force to overwrite it")
    if not click.confirm(f"Would you like to overwrite {path}", err=True):
        raise StepError(f"file {path} already exists")


_UP, _DOWN = ("\x1b[A", "\x1bOA", "k"), ("\x1b[B", "\x1bOB", "j")
_VISIBLE = 10  # rows of a long list shown at once; the window follows the cursor


def select(label: str, options: list[str], *, flag: str, command: str) -> int:
    """step's arrow-key list on the terminal: up/down (or k/j) move, enter picks. Returns the
    index picked; without a terminal, fails naming the flag that answers the question."""
    if not has_terminal():
        raise StepError(f"'{command}' requires the '--{flag}' flag (no terminal to ask on)")
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    picked, top, drawn = 0, 0, 0
    try:
        tty.setcbreak(fd)  # keys one at a time, not echoed; Ctrl-C still interrupts
        info(f"Use the arrow keys to navigate: ↓ ↑ → ←\n? {label}")
        pending = ""
        while True:
            top = min(max(top, picked - _VISIBLE + 1), picked)
            drawn = _draw(options, picked, top, drawn)
            chunk = os.read(fd, 64)
            if not chunk:
                raise click.Abort()
            pending += chunk.decode(errors="replace")
            while pending:
                key, pending = _next_key(pending)
                if key is None:  # the rest of an escape sequence is on its way
                    break
                if key in ("\r", "\n"):
                    _erase(drawn + 2)
                    return picked
                if key in _UP:
                    picked = max(picked - 1, 0)
                elif key in _DOWN:
                    picked = min(picked + 1, len(options) - 1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _next_key(pending: str) -> tuple[str | None, str]:
    """The first key in ``pending`` (an escape sequence counts as one) and what follows."""
    if not pending.startswith("\x1b"):
        return pending[0], pending[1:]
    if len(pending) < 3:
        return None, pending
    if pending[1] in "[O":
        end = 2
        while end < len(pending) and not pending[end].isalpha() and pending[end] != "~":
            end += 1
        if end == len(pending):
            return None, pending
        return pending[:end + 1], pending[end + 1:]
    return pending[0], pending[1:]


def _draw(options: list[str], picked: int, top: int, drawn: int) -> int:
    """Redraw the visible rows in place of the ``drawn`` rows printed before."""
    rows = [f"  ▸ {o}" if i == picked else f"    {o}"
            for i, o in enumerate(options[top:top + _VISIBLE], top)]
    out = (f"\x1b[{drawn}A" if drawn else "") + "".join(f"\r\x1b[2K{r}\n" for r in rows)
    sys.stderr.write(out)
    sys.stderr.flush()
    return len(rows)


def _erase(rows: int) -> None:
    sys.stderr.write(f"\x1b[{rows}A\r\x1b[J")
    sys.stderr.flush()
