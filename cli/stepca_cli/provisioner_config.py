"""``step ca provisioner add|update|remove``: the provisioners of ca.json, edited as step edits
them when the CA has no admin API. The flags of each type are those its plugin declares
(``ProvisionerOption``s of its ``ClientRegistration``); what cannot be written as given (JWK's
``--create``) is done by the type's client (``ProvisionerClient.edit_entry``). ca.json is
rewritten atomically, with its mode and every other key kept; a refusal leaves it untouched."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stepca.provisioner_client import ClientRegistration, ProvisionerOption
from stepca.timeutil import parse_duration
from stepca.x509util import write_private
from stepca_cli import ui
from stepca_cli.context import StepCommand
from stepca_cli.errors import StepError
from stepca_cli.plugin_loading import plugins_for

if TYPE_CHECKING:
    from stepca.plugins import Plugins
    from stepca.provisioner import Claims

__all__ = ["CLAIM_OPTIONS", "PluginOptionsCommand", "add_provisioner", "provisioner_entry",
           "remove_provisioner", "report_written", "update_provisioner"]

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


def _click_options(option: ProvisionerOption, *, updating: bool) -> list[click.Option]:
    names = [f"--{option.flag}", *(f"--{alias}" for alias in option.aliases),
             _param_name(option.flag)]
    envvar = "STEP_" + option.flag.upper().replace("-", "_")
    if option.kind == "switch":
        if updating:  # as step's: --flag sets it, --flag=false clears it
            return [click.Option(names, type=click.BOOL, is_flag=False, flag_value=True,
                                 default=None, envvar=envvar, metavar="true|false",
                                 help=f"{option.help} Use --{option.flag}=false to clear it.")]
        return [click.Option(names, is_flag=True, default=False, envvar=envvar,
                             help=option.help)]
    metavar = {"list": "VALUE", "duration": "DURATION", "file": "FILE"}.get(option.kind, "VALUE")
    made = [click.Option(names, multiple=option.kind == "list", metavar=metavar, envvar=envvar,
                         help=option.help)]
    if updating and option.kind == "list":
        made.append(click.Option([f"--remove-{option.flag}", _param_name(f"remove-{option.flag}")],
                                 multiple=True, metavar=metavar,
                                 help=f"Remove a value given with --{option.flag}; repeat for "
                                      "several."))
    return made


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
    added when it is first run (the plugins are the root context's object); ``updating``
    gives them ``update``'s forms (``--<switch>=false``, ``--remove-<list flag>``)."""

    def __init__(self, *args: Any, updating: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updating = updating
        self._plugin_options_added = False

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        plugins = plugins_for(parent) if parent is not None else extra.get("obj")
        if plugins is not None and not self._plugin_options_added:
            extra_params = [made for o in declared_options(plugins).values()
                            for made in _click_options(o, updating=self.updating)]
            help_at = next((i for i, p in enumerate(self.params) if "--help" in p.opts),
                           len(self.params))
            self.params[help_at:help_at] = extra_params
            self._plugin_options_added = True
        if plugins is not None and not self.updating:
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
    from stepca.plugins import distribution_for

    return StepError(f"provisioner type {kind} is not installed: pip install "
                     f"{distribution_for(kind)}")


def given_options(values: Mapping[str, Any], options: Iterable[ProvisionerOption], *,
                  updating: bool = False) -> dict[str, Any]:
    """The plugin flags given on the command line, by flag (``remove-<flag>`` for the values
    to take out of a list). update's switches are None when absent and False when cleared."""
    given = {}
    for option in options:
        for flag in (option.flag, f"remove-{option.flag}"):
            value = values.get(_param_name(flag))
            absent = (None, ()) if updating and option.kind == "switch" else (None, (), False)
            if value not in absent:
                given[flag] = value
    return given


def _value(option: ProvisionerOption, value: Any, *, flag: str | None = None) -> Any:
    flag = flag or option.flag
    if option.kind == "switch":
        return bool(value)
    if option.kind == "list":
        items = [str(v) for v in value]
        if not all(items):
            raise StepError(f"flag '--{flag}' cannot be empty")
        return list(dict.fromkeys(items))
    text = str(value)
    if not text:
        raise StepError(f"flag '--{flag}' cannot be empty")
    if option.kind == "duration":
        try:
            parse_duration(text)
        except ValueError as exc:
            raise StepError(f"flag '--{flag}': {exc}") from None
    if option.kind == "file":
        path = Path(text).expanduser().resolve()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise StepError(f"flag '--{flag}': {text} is not a readable file")
        return str(path)
    return text


def _check_flags(registration: ClientRegistration, given: Mapping[str, Any]) -> None:
    known = {o.flag for o in (*registration.options, *CLAIM_OPTIONS)}
    known |= {f"remove-{o.flag}" for o in registration.options if o.kind == "list"}
    for flag in given:
        if flag not in known:
            raise StepError(f"flag '--{flag}' is not used by provisioners of type "
                            f"{registration.type}")


def _checked_claims(claims: dict[str, Any], base_claims: Claims) -> None:
    try:
        base_claims.merged(claims)  # the CA's own rules: min <= default <= max, ...
    except ValueError as exc:
        raise StepError(str(exc)) from None


def _edit_with_client(registration: ClientRegistration, entry: dict[str, Any],
                      given: Mapping[str, Any], *, adding: bool, command: str) -> None:
    """Hand the type's key-less options to its client's ``edit_entry``."""
    inputs = {o.flag: given[o.flag] for o in registration.options
              if o.key is None and o.flag in given}
    if not any(o.key is None for o in registration.options):
        return
    try:
        registration.load()().edit_entry(entry, inputs, adding=adding, command=command)
    except ValueError as exc:
        raise StepError(str(exc)) from None


def provisioner_entry(name: str, registration: ClientRegistration,
                      given: Mapping[str, Any], base_claims: Claims, *,
                      command: str = "step ca provisioner add") -> dict[str, Any]:
    """The ca.json entry for ``name`` of ``registration``'s type from the flags ``given``."""
    _check_flags(registration, given)
    missing = [o.flag for o in registration.options if o.required and o.flag not in given]
    if missing:
        raise StepError(f"'step ca provisioner add --type {registration.type}' requires the "
                        f"'--{missing[0]}' flag")
    own = {o.flag: o for o in registration.options}
    claim_options = {o.flag: o for o in CLAIM_OPTIONS}
    entry: dict[str, Any] = {"type": registration.type, "name": name}
    inputs: dict[str, Any] = {}
    for flag, value in given.items():
        if flag in own:
            checked = _value(own[flag], value)
            if own[flag].key is None:
                inputs[flag] = checked
            else:
                entry[own[flag].key] = checked
    _edit_with_client(registration, entry, inputs, adding=True, command=command)
    claims = {claim_options[f].key: _value(claim_options[f], v)
              for f, v in given.items() if f in claim_options}
    if claims:
        _checked_claims(claims, base_claims)
        entry["claims"] = claims
    return entry


# -- ca.json ---------------------------------------------------------------------------------------

def _read_config(path: Path) -> dict[str, Any]:
    from stepca.bounded_read import FileTooLarge, read_file_bounded

    try:
        data = read_file_bounded(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise StepError(f"error reading {path}: {exc.strerror or exc}") from None
    except FileTooLarge as exc:
        raise StepError(f"error reading {path}: {exc}") from None
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise StepError(f"error reading {path}: not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise StepError(f"error reading {path}: not a ca.json object")
    return config


def _provisioners(config: dict[str, Any], path: Path) -> list[Any]:
    authority = config.setdefault("authority", {})
    if not isinstance(authority, dict):
        raise StepError(f"error reading {path}: 'authority' is not an object")
    provisioners = authority.get("provisioners") or []
    if not isinstance(provisioners, list):
        raise StepError(f"error reading {path}: 'authority.provisioners' is not a list")
    return provisioners


def _base_claims(config: dict[str, Any], path: Path) -> Claims:
    from stepca.provisioner import Claims  # on use: step --help need not import it

    try:
        return Claims().merged(config["authority"].get("claims"))
    except ValueError as exc:
        raise StepError(f"error reading {path}: {exc}") from None


def _write_config(path: Path, config: dict[str, Any], provisioners: list[Any]) -> None:
    config["authority"]["provisioners"] = provisioners
    mode = path.stat().st_mode & 0o777
    write_private(path, (json.dumps(config, indent="\t") + "\n").encode(), mode=mode)


def report_written(path: Path) -> None:
    """step's lines after editing ca.json without an admin API."""
    ui.status("CA Configuration", str(path))
    ui.info()
    ui.info("Success! Your `step-ca` config has been updated. To pick up the new "
            "configuration SIGHUP (kill -1 <pid>) or restart the step-ca process.")


def _named(provisioners: list[Any], name: str) -> list[int]:
    return [i for i, p in enumerate(provisioners) if isinstance(p, dict) and p.get("name") == name]


def add_provisioner(plugins: Plugins, config_path: Path, name: str, kind: str,
                    values: Mapping[str, Any], *,
                    command: str = "step ca provisioner add") -> dict[str, Any]:
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
    provisioners = _provisioners(config, config_path)
    if _named(provisioners, name):
        raise StepError(f"a provisioner named '{name}' already exists in {config_path}")
    given = given_options(values, declared_options(plugins).values())
    entry = provisioner_entry(name, registration, given, _base_claims(config, config_path),
                              command=command)
    _write_config(config_path, config, [*provisioners, entry])
    return entry


def _the_one(provisioners: list[Any], name: str, path: Path) -> int:
    found = _named(provisioners, name)
    if not found:
        raise StepError(f"provisioner '{name}' not found in {path}")
    if len(found) > 1:
        raise StepError(f"{len(found)} provisioners are named '{name}' in {path}; give each "
                        "its own name first")
    return found[0]


def update_provisioner(plugins: Plugins, config_path: Path, name: str,
                       values: Mapping[str, Any], *, new_name: str | None,
                       command: str = "step ca provisioner update") -> dict[str, Any]:
    """Change the given flags of the provisioner ``name``, keeping the rest of its entry;
    returns the new entry."""
    config = _read_config(config_path)
    provisioners = _provisioners(config, config_path)
    index = _the_one(provisioners, name, config_path)
    entry = copy.deepcopy(provisioners[index])
    kind = str(entry.get("type", ""))
    registration = plugins.provisioner_clients().get(kind.lower())
    if registration is None:
        raise _not_installed(kind)
    given = given_options(values, declared_options(plugins).values(), updating=True)
    if not given and new_name is None:
        raise StepError("nothing to update: give the flags to change")
    _check_flags(registration, given)
    own = {o.flag: o for o in registration.options}
    inputs: dict[str, Any] = {}
    for flag, value in given.items():
        option = own.get(flag)
        if option is None or option.key is None:
            if option is not None:  # update may pass "" to the client: "remove it"
                inputs[flag] = value if value == "" else _value(option, value)
            continue
        _update_key(entry, option, value, given.get(f"remove-{flag}"))
    for flag in given:
        if flag.startswith("remove-") and flag.removeprefix("remove-") not in given:
            option = own[flag.removeprefix("remove-")]
            if option.key is not None:
                _update_key(entry, option, (), given[flag])
    for option in registration.options:
        if option.required and option.key is not None and option.key not in entry:
            raise StepError(f"flag '--{option.flag}' cannot be removed: provisioners of type "
                            f"{registration.type} require it")
    claims = dict(entry.get("claims") or {})
    for option in CLAIM_OPTIONS:
        if option.flag in given:
            _update_key(claims, option, given[option.flag], None)
    if claims:
        _checked_claims(claims, _base_claims(config, config_path))
        entry["claims"] = claims
    else:
        entry.pop("claims", None)
    _edit_with_client(registration, entry, inputs, adding=False, command=command)
    if new_name is not None:
        if not new_name.strip():
            raise StepError("the provisioner name cannot be empty")
        if new_name != name and _named(provisioners, new_name):
            raise StepError(f"a provisioner named '{new_name}' already exists in {config_path}")
        entry["name"] = new_name
    provisioners[index] = entry
    _write_config(config_path, config, provisioners)
    return entry


def _update_key(entry: dict[str, Any], option: ProvisionerOption, value: Any,
                removals: Iterable[str] | None) -> None:
    """step's update rules: a list adds and removes values, a switch is set or cleared, and an
    empty value removes the key."""
    key = str(option.key)
    if option.kind == "list":
        current = entry.get(key) or []
        if not isinstance(current, list):
            raise StepError(f"'{key}' of this provisioner is not a list; fix ca.json by hand")
        taken_out = set(_value(option, removals, flag=f"remove-{option.flag}")
                        if removals else ())
        merged = [v for v in dict.fromkeys([*current, *_value(option, value)])
                  if v not in taken_out]
        if merged:
            entry[key] = merged
        else:
            entry.pop(key, None)
    elif option.kind == "switch":
        if value:
            entry[key] = True
        else:
            entry.pop(key, None)  # step leaves false switches out
    elif value == "":
        entry.pop(key, None)
    else:
        entry[key] = _value(option, value)


def remove_provisioner(config_path: Path, name: str, *, kid: str | None = None,
                       client_id: str | None = None) -> dict[str, Any]:
    """Take the provisioner ``name`` out of ca.json (the one with ``kid`` or ``client_id``
    when several share the name); returns its entry."""
    if kid is not None and client_id is not None:
        raise StepError("flag '--kid' and flag '--client-id' are mutually exclusive")
    config = _read_config(config_path)
    provisioners = _provisioners(config, config_path)
    found = _named(provisioners, name)
    if kid is not None:
        found = [i for i in found if (provisioners[i].get("key") or {}).get("kid") == kid]
        selector = f" with kid {kid}"
    elif client_id is not None:
        found = [i for i in found if provisioners[i].get("clientID") == client_id]
        selector = f" with client id {client_id}"
    else:
        selector = ""
    if not found:
        raise StepError(f"provisioner '{name}'{selector} not found in {config_path}")
    if len(found) > 1:
        raise StepError(f"{len(found)} provisioners are named '{name}' in {config_path}: "
                        "choose one with --kid or --client-id")
    if len(provisioners) == 1:
        raise StepError(f"provisioner '{name}' is the last one in {config_path}: the CA needs "
                        "at least one")
    removed = provisioners.pop(found[0])
    _write_config(config_path, config, provisioners)
    return removed
