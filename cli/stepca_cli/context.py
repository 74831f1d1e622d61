"""Where step keeps its files, and how flags get values from ``STEP_*`` variables and
``$(step path)/config/defaults.json`` (command line > environment > defaults.json > default).

Contexts, as step has them: ``$STEPPATH/contexts.json`` names contexts, each an authority
(``authorities/<authority>/``, which then is ``$(step path)``) and a profile
(``profiles/<profile>/config/defaults.json``, overriding the authority's defaults);
``current-context.json`` says which one is in use, ``--context`` picks one for a single run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from stepca_cli.errors import StepError, required_flag

RESERVED_KEYS = ("context", "profile", "authority")


def base_path() -> Path:
    env = os.environ.get("STEPPATH")
    return Path(env) if env else Path.home() / ".step"


@dataclass(frozen=True)
class Context:
    name: str
    authority: str
    profile: str

    @property
    def path(self) -> Path:
        return base_path() / "authorities" / self.authority

    @property
    def profile_path(self) -> Path:
        return base_path() / "profiles" / self.profile


_chosen_for_run: str | None = None  # --context: this run only, current-context.json untouched


def contexts_file() -> Path:
    return base_path() / "contexts.json"


def current_context_file() -> Path:
    return base_path() / "current-context.json"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StepError(f"error reading {path}: {exc}") from None


def load_contexts() -> dict[str, Context]:
    data = _read_json(contexts_file()) or {}
    if not isinstance(data, dict):
        raise StepError(f"error reading {contexts_file()}: it must hold a JSON object")
    found = {}
    for name, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        authority, profile = entry.get("authority"), entry.get("profile")
        for label, value in (("authority", authority), ("profile", profile)):
            if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
                raise StepError(f"error in context '{name}': context cannot have an empty or "
                                f"invalid {label} value; check your $STEPPATH/contexts.json file")
        found[name] = Context(name, authority, profile)
    return found


def save_contexts(contexts: dict[str, Context]) -> None:
    from stepca.x509util import write_private

    data = {c.name: {"authority": c.authority, "profile": c.profile}
            for c in contexts.values()}
    write_private(contexts_file(), json.dumps(data, indent=4).encode(), mode=0o600)


def save_current(name: str) -> None:
    from stepca.x509util import write_private

    if name not in load_contexts():
        raise StepError(f"context '{name}' not found")
    write_private(current_context_file(), json.dumps({"context": name}).encode(), mode=0o644)


def choose_for_run(name: str | None) -> None:
    global _chosen_for_run
    _chosen_for_run = name


def current_context() -> Context | None:
    """The context of this run: ``--context``, else ``current-context.json``."""
    contexts = load_contexts()
    name = _chosen_for_run
    if name is None:
        stored = _read_json(current_context_file())
        name = stored.get("context") if isinstance(stored, dict) else None
        if name is None:
            return None
    if name not in contexts:
        raise StepError(f"could not load context '{name}'")
    return contexts[name]


def step_path() -> Path:
    """``$(step path)``: the current context's authority folder, else the base path."""
    context = current_context()
    return context.path if context else base_path()


def defaults_file() -> Path:
    return step_path() / "config" / "defaults.json"


def _defaults_of(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StepError(f"error reading {path}: it must hold a JSON object")
    for reserved in RESERVED_KEYS:
        if reserved in data:
            raise StepError(f"cannot set '{reserved}' attribute in config files")
    return data


def load_defaults() -> dict[str, Any]:
    context = current_context()
    if context is None:
        contexts = load_contexts()
        if len(contexts) > 1:
            raise StepError("no context selected: pass --context or run "
                            "'step context select <name>'")
        if contexts:  # step selects the only context there is, and says so
            context = next(iter(contexts.values()))
            save_current(context.name)
            click.echo(f"✔ Context: {context.name}", err=True)
    if context is None:
        return _defaults_of(defaults_file())
    return {**_defaults_of(context.path / "config" / "defaults.json"),
            **_defaults_of(context.profile_path / "config" / "defaults.json")}


def flag_name(param: click.Parameter) -> str | None:
    for opt in getattr(param, "opts", []):
        if opt.startswith("--"):
            return opt[2:]
    return None


def option_group(*options: Any) -> Any:
    """One decorator applying several ``click.option`` decorators, listed in help order."""
    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command
    return apply


def _context_flag(args: list[str]) -> str | None:
    """``--context`` from the raw arguments: it decides which defaults.json the other flags
    fall back on, so it is read before click parses them."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--context" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--context="):
            return arg.split("=", 1)[1]
    return os.environ.get("STEP_CONTEXT") or None


class StepCommand(click.Command):
    """A command whose options also read ``STEP_<FLAG>`` and defaults.json, as step's do, and
    take ``--context`` to use another context for one run."""

    reads_defaults = True

    def __init__(self, *args: Any, reads_defaults: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads_defaults = reads_defaults
        if reads_defaults:
            self.params.append(click.Option(
                ["--context"], metavar="NAME", expose_value=False,
                help="The context name to apply for the given command."))
        for param in self.params:
            name = flag_name(param)
            if isinstance(param, click.Option) and name and param.envvar is None:
                param.envvar = "STEP_" + name.upper().replace("-", "_")

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        if self.reads_defaults and "default_map" not in extra:
            if not any(a in ("-h", "--help") for a in args):
                choose_for_run(_context_flag(args))
            defaults = load_defaults()
            mapping = {}
            for param in self.params:
                name = flag_name(param)
                if name and name in defaults and param.name:
                    mapping[param.name] = defaults[name]
            extra["default_map"] = mapping
        return super().make_context(info_name, args, parent=parent, **extra)


def command_path(ctx: click.Context) -> str:
    return ctx.command_path


def require(ctx: click.Context, value: Any, flag: str) -> Any:
    if value in (None, "", ()):
        raise required_flag(ctx.command_path, flag)
    return value


def root_file(ctx: click.Context, root: str | None) -> Path:
    """``--root``, else ``$(step path)/certs/root_ca.crt`` if it exists."""
    if root:
        return Path(root)
    fallback = step_path() / "certs" / "root_ca.crt"
    if fallback.exists():
        return fallback
    raise required_flag(ctx.command_path, "root")


def normalize_ca_url(value: str) -> str:
    """Add ``https://`` when no scheme is given; refuse anything but https; drop the path."""
    from urllib.parse import urlparse

    url = value if "://" in value else f"https://{value}"
    parsed = urlparse(url)
    if parsed.scheme != "https":
        raise StepError(f"invalid value '{value}' for flag '--ca-url'; must have https scheme")
    if not parsed.netloc:
        raise StepError(f"invalid value '{value}' for flag '--ca-url'")
    return f"https://{parsed.netloc}"
