"""Subcommands known by name before their modules are imported (decision 0041).

A group's ``commands`` may be a :class:`LazyCommands`: it names each subcommand with the
``module:attribute`` that defines it and its one-line help, so ``step --help`` lists them and
``step version`` runs without importing the modules of ``step ca`` or ``step certificate``. A
subcommand's module is imported the first time the subcommand itself is looked up. click's
``Group`` takes any mutable mapping as its ``commands``: its lookups, listings and "did you
mean" suggestions work unchanged."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Lazy:
    """Where a subcommand is defined (``module:attribute``) and its one-line help, as
    ``step help`` shows it in a COMMANDS table (tests/test_cli_startup.py checks they agree)."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        # pkgutil.resolve_name does this too, but importing it costs every command's start
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyCommands(MutableMapping[str, click.Command]):
    """Subcommands by name: those already loaded, and those still :class:`Lazy`.

    ``more`` is called once, before a name is found missing or the whole list is read: the root
    group uses it to let plugins add their commands. ``on_load`` sees every command that
    enters the mapping (step's help layout is installed that way)."""

    def __init__(self, lazy: Mapping[str, Lazy], *,
                 more: Callable[[], None] | None = None) -> None:
        self._loaded: dict[str, click.Command] = {}
        self._lazy = dict(lazy)
        self._more = more
        self.on_load: Callable[[click.Command], None] | None = None

    def _complete(self) -> None:
        more, self._more = self._more, None  # once, and not again from inside more()
        if more is not None:
            more()

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._lazy:
            self._store(name, self._lazy.pop(name).load())
        if name not in self._loaded:
            self._complete()
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._lazy.pop(name, None)
        self._store(name, command)

    def _store(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        if self.on_load is not None:
            self.on_load(command)

    def __delitem__(self, name: str) -> None:
        if self._lazy.pop(name, None) is None:
            del self._loaded[name]

    def __contains__(self, name: object) -> bool:
        if name in self._loaded or name in self._lazy:
            return True
        self._complete()
        return name in self._loaded

    def __iter__(self) -> Iterator[str]:
        self._complete()
        return iter([*self._loaded, *self._lazy])

    def __len__(self) -> int:
        self._complete()
        return len(self._loaded) + len(self._lazy)

    def loaded(self) -> dict[str, click.Command]:
        """The subcommands imported so far (nothing is imported to answer)."""
        return dict(self._loaded)

    def short_help(self, name: str) -> str | None:
        """The one-line help of a subcommand not imported yet, else None."""
        entry = self._lazy.get(name)
        return entry.short_help if entry is not None else None
