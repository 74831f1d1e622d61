"""``step ca provisioner add``: a provisioner entry for ca.json, built from the flags its type's
plugin declares (``ProvisionerOption``s of its ``ClientRegistration``), written into ca.json as
step does when the CA has no admin API. The CA reads it when it next starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stepca.plugins import Plugins, distribution_for
from stepca.provisioner_client import ClientRegistration, ProvisionerOption
from stepca.timeutil import parse_duration
from stepca.x509util import write_private
from stepca_cli.context import StepCommand
from stepca_cli.errors import StepError

if TYPE_CHECKING:
    from stepca.provisioner import Claims

__all__ = ["CLAIM_OPTIONS", "PluginOptionsCommand", "add_provisioner", "provisioner_entry"]

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a ca.json is kilobytes; refuse to slurp anything else

CLAIM_OPTIONS: tuple[ProvisionerOption, ...] = (
    ProvisionerOption("x509-min-dur", "minTLSCertDuration", "duration",
                      "The minimum duration of an X.509 certificate from this provisioner."),
    ProvisionerOption("x509-max-dur", "maxTLSCertDuration", "duration",
                      "The maximum duration of an X.509 certificate from this provisioner."),
    ProvisionerOption("x509-default-dur", "defaultTLSCertDuration", "duration",
                      "The default duration of an X.509 certificate from this provisioner."),
    ProvisionerOption("disable-renewal", "disableRenewal", "switch",
                      "Disable renewal for all certificates from this provisioner."),
    ProvisionerOption("allow-renewal-after-expiry", "allowRenewalAfterExpiry", "switch",
                      "Allow renewals of expired certificates from this provisioner."),
    ProvisionerOption("disable-smallstep-extensions", "disableSmallstepExtensions", "switch",
                      "Leave the provisioner extension out of certificates."),
)
"""The claims flags every type takes; they write the entry's ``claims``."""


def _param_name(flag: str) -> str:
    return "plugin_" + flag.replace("-", "_")


def _click_option(option: ProvisionerOption) -> click.Option:
    names = [f"--{option.flag}", *(f"--{alias}" for alias in option.aliases),
             _param_name(option.flag)]
    envvar = "STEP_" + option.flag.upper().replace("-", "_")
    if option.kind == "switch":
        return click.Option(names, is_flag=True, default=False, envvar=envvar, help=option.help)
    metavar = {"list": "VALUE", "duration": "DURATION", "file": "FILE"}.get(option.kind, "VALUE")
    return click.Option(names, multiple=option.kind == "list", metavar=metavar, envvar=envvar,
                        help=option.help)


def declared_options(plugins: Plugins | None) -> dict[str, ProvisionerOption]:
    """Every flag some installed type declares, once; a flag two plugins declare with other
    meanings cannot be offered."""
    options: dict[str, ProvisionerOption] = {o.flag: o for o in CLAIM_OPTIONS}
    registrations = plugins.provisioner_clients().values() if plugins is not None else ()
    for registration in registrations:
        for option in registration.options:
            known = options.setdefault(option.flag, option)
            if (known.key, known.kind, known.aliases) != (option.key, option.kind,
                                                          option.aliases):
                raise StepError(f"flag '--{option.flag}' is declared with two meanings by "
                                f"the installed plugins (type {registration.type} and another)")
    return options


class PluginOptionsCommand(StepCommand):
    """A command whose flags also include those the installed provisioner plugins declare,
    added when it is first run (the plugins are the root context's object)."""

    _plugin_options_added = False

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        plugins = parent.find_root().obj if parent is not None else extra.get("obj")
        if plugins is not None and not self._plugin_options_added:
            extra_params = [_click_option(o) for o in declared_options(plugins).values()]
            help_at = next((i for i, p in enumerate(self.params) if "--help" in p.opts),
                           len(self.params))
            self.params[help_at:help_at] = extra_params
            self._plugin_options_added = True
        if plugins is not None:
            # before click parses: the flags of a type that is not installed are unknown
            kind = _type_argument(args)
            if kind is not None and kind.lower() not in plugins.provisioner_clients():
                raise _not_installed(kind)
        return super().make_context(info_name, args, parent=parent, **extra)


def _type_argument(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--":
            return None
        if arg == "--type" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--type="):
            return arg.partition("=")[2]
    return None


def _not_installed(kind: str) -> StepError:
    return StepError(f"provisioner type {kind} is not installed: pip install "
                     f"{distribution_for(kind)}")


def given_options(values: Mapping[str, Any],
                  options: Iterable[ProvisionerOption]) -> dict[str, Any]:
    """The plugin flags given on the command line, by flag."""
    given = {}
    for option in options:
        value = values.get(_param_name(option.flag))
        if value not in (None, (), False):
            given[option.flag] = value
    return given


def _value(option: ProvisionerOption, value: Any) -> Any:
    if option.kind == "switch":
        return True
    if option.kind == "list":
        items = [str(v) for v in value]
        if not all(items):
            raise StepError(f"flag '--{option.flag}' cannot be empty")
        return list(dict.fromkeys(items))
    text = str(value)
    if not text:
        raise StepError(f"flag '--{option.flag}' cannot be empty")
    if option.kind == "duration":
        try:
            parse_duration(text)
        except ValueError as exc:
            raise StepError(f"flag '--{option.flag}': {exc}") from None
    if option.kind == "file":
        path = Path(text).expanduser().resolve()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise StepError(f"flag '--{option.flag}': {text} is not a readable file")
        return str(path)
    return text


def provisioner_entry(name: str, registration: ClientRegistration,
                      given: Mapping[str, Any], base_claims: Claims) -> dict[str, Any]:
    """The ca.json entry for ``name`` of ``registration``'s type from the flags ``given``."""
    own = {o.flag: o for o in registration.options}
    claim_options = {o.flag: o for o in CLAIM_OPTIONS}
    for flag in given:
        if flag not in own and flag not in claim_options:
            raise StepError(f"flag '--{flag}' is not used by provisioners of type "
                            f"{registration.type}")
    missing = [o.flag for o in registration.options if o.required and o.flag not in given]
    if missing:
        raise StepError(f"'step ca provisioner add --type {registration.type}' requires the "
                        f"'--{missing[0]}' flag")
    entry: dict[str, Any] = {"type": registration.type, "name": name}
    for flag, value in given.items():
        if flag in own:
            entry[own[flag].key] = _value(own[flag], value)
    claims = {claim_options[f].key: _value(claim_options[f], v)
              for f, v in given.items() if f in claim_options}
    if claims:
        try:
            base_claims.merged(claims)  # the CA's own rules: min <= default <= max, ...
        except ValueError as exc:
            raise StepError(str(exc)) from None
        entry["claims"] = claims
    return entry


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise StepError(f"error reading {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise StepError(f"error reading {path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise StepError(f"error reading {path}: not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise StepError(f"error reading {path}: not a ca.json object")
    return config


def add_provisioner(plugins: Plugins, config_path: Path, name: str, kind: str,
                    values: Mapping[str, Any]) -> dict[str, Any]:
    """Check the flags against the type's declarations and append the entry to ca.json;
    returns the entry."""
    registration = plugins.provisioner_clients().get(kind.lower())
    if registration is None:
        raise _not_installed(kind)
    if not registration.options:
        raise StepError(f"the installed plugin for type {registration.type} declares no flags "
                        f"for 'step ca provisioner add'; add its entry to ca.json by hand")
    if not name.strip():
        raise StepError("the provisioner name cannot be empty")
    config = _read_config(config_path)
    authority = config.setdefault("authority", {})
    if not isinstance(authority, dict):
        raise StepError(f"error reading {config_path}: 'authority' is not an object")
    provisioners = authority.get("provisioners") or []
    if not isinstance(provisioners, list):
        raise StepError(f"error reading {config_path}: 'authority.provisioners' is not a list")
    if any(isinstance(p, dict) and p.get("name") == name for p in provisioners):
        raise StepError(f"a provisioner named '{name}' already exists in {config_path}")
    from stepca.provisioner import Claims  # on use: step --help need not import it

    try:
        base_claims = Claims().merged(authority.get("claims"))
    except ValueError as exc:
        raise StepError(f"error reading {config_path}: {exc}") from None
    given = given_options(values, declared_options(plugins).values())
    entry = provisioner_entry(name, registration, given, base_claims)
    authority["provisioners"] = [*provisioners, entry]
    mode = config_path.stat().st_mode & 0o777
    write_private(config_path, (json.dumps(config, indent="\t") + "\n").encode(), mode=mode)
    return entry
