"""Where step keeps its files, and how flags get values from ``STEP_*`` variables and
``$(step path)/config/defaults.json`` (command line > environment > defaults.json > default)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from stepca_cli.errors import StepError, required_flag


def base_path() -> Path:
    env = os.environ.get("STEPPATH")
    return Path(env) if env else Path.home() / ".step"


def step_path() -> Path:
    return base_path()


def defaults_file() -> Path:
    return step_path() / "config" / "defaults.json"


def load_defaults() -> dict[str, Any]:
    path = defaults_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StepError(f"error reading {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StepError(f"error reading {path}: it must hold a JSON object")
    for reserved in ("context", "profile", "authority"):
        if reserved in data:
            raise StepError(f"cannot set '{reserved}' attribute in config files")
    return data


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


class StepCommand(click.Command):
    """A command whose options also read ``STEP_<FLAG>`` and defaults.json, as step's do."""

    reads_defaults = True

    def __init__(self, *args: Any, reads_defaults: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads_defaults = reads_defaults
        for param in self.params:
            name = flag_name(param)
            if isinstance(param, click.Option) and name and param.envvar is None:
                param.envvar = "STEP_" + name.upper().replace("-", "_")

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        if self.reads_defaults and "default_map" not in extra:
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
