"""Finding plugins: entry points of the group ``stepca.plugins``, the built-ins, and any passed
in-process; one plugin manager per ``Plugins`` object, no module globals.

The plugin API's base classes are imported when a registry is asked for, not with this module:
``step --help`` loads every plugin for its commands and needs none of them (decision 0043)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from stepca import PROJECT, hookspecs

if TYPE_CHECKING:
    from stepca.keystore import KeyStore
    from stepca.provisioner import Provisioner
    from stepca.provisioner_client import ClientRegistration
    from stepca.store import CertificateStore, RevocationStore

__all__ = ["DuplicatePluginType", "PluginInfo", "PluginLoadError", "Plugins",
           "distribution_for"]

ENTRY_POINT_GROUP = "stepca.plugins"
BUILTINS = ("stepca._softkms", "stepca._memory_store")

# kind -> (its registration hook, the base class its classes must extend, as module:name)
_REGISTRATIONS = {
    "provisioner": ("stepca_provisioner_types", "stepca.provisioner:Provisioner"),
    "key store": ("stepca_key_stores", "stepca.keystore:KeyStore"),
    "certificate store": ("stepca_certificate_stores", "stepca.store:CertificateStore"),
    "revocation store": ("stepca_revocation_stores", "stepca.store:RevocationStore"),
}


def distribution_for(provisioner_type: str) -> str:
    """The distribution that provides ``provisioner_type`` by the project's naming rule
    (``plugins/<type>`` is ``stepca-<type>``), named when no installed plugin provides it."""
    return f"stepca-{provisioner_type.strip().lower()}"


class PluginLoadError(Exception):
    """A plugin could not be imported."""


class DuplicatePluginType(Exception):
    """Two plugins claim the same type."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    provides: tuple[str, ...]


class Plugins:
    """The plugin manager of one CA or CLI process, behind a typed façade."""

    def __init__(self, pm: pluggy.PluginManager, *, load_errors: Iterable[str] = (),
                 distributions: dict[str, importlib.metadata.Distribution | None] | None = None
                 ) -> None:
        self.pm = pm
        self.load_errors = list(load_errors)
        self._distributions = distributions or {}
        self._named: dict[str, tuple[str, str]] = {}

    @classmethod
    def load(cls, *, plugins: Iterable[object] = (), load_entrypoints: bool | None = None,
             blocked: Iterable[str] = (), lazy: bool = False) -> Plugins:
        """Register the built-ins, ``plugins``, and every installed ``stepca.plugins`` entry
        point unless ``load_entrypoints`` is false or ``STEPCA_DISABLE_PLUGIN_AUTOLOAD`` is
        ``1``/``true``. Names in ``blocked`` or in ``STEPCA_BLOCK_PLUGINS`` (comma-separated)
        are skipped.

        A plugin that fails to import, or implements a hook that does not exist, is left out
        and reported in ``load_errors``, one line each. An entry module may import its classes
        inside its registration hooks, so each entry point's are called as it is loaded: a
        class that fails to import is a load error too. ``lazy`` skips that call, for a
        process that asks for no class (``step`` listing its commands): its classes are then
        imported, and fail, when a registry is asked for."""
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(hookspecs)
        env_blocked = os.environ.get("STEPCA_BLOCK_PLUGINS", "")
        for name in [*blocked, *filter(None, (n.strip() for n in env_blocked.split(",")))]:
            pm.set_blocked(name)
        for module in BUILTINS:
            pm.register(importlib.import_module(module), name=module)
        for plugin in plugins:
            pm.register(plugin)
        pm.check_pending()  # our own and in-process plugins must be right
        if load_entrypoints is None:
            load_entrypoints = os.environ.get("STEPCA_DISABLE_PLUGIN_AUTOLOAD", "").lower() \
                not in ("1", "true", "yes")
        errors: list[str] = []
        distributions: dict[str, importlib.metadata.Distribution | None] = {}
        if load_entrypoints:
            for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                             key=lambda e: e.name):
                if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                    continue
                try:
                    plugin = ep.load()
                    pm.register(plugin, name=ep.name)
                    pm.check_pending()
                    if not lazy:
                        _call_registrations(pm, plugin)
                except Exception as exc:  # any failure here is the plugin's, not ours
                    if pm.get_plugin(ep.name) is not None:
                        pm.unregister(name=ep.name)
                    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                    dist = ep.dist.name if ep.dist else "unknown distribution"
                    errors.append(f"plugin '{ep.name}' from distribution '{dist}' failed to "
                                  f"load: {reason}")
                    continue
                distributions[ep.name] = ep.dist
        if os.environ.get("STEPCA_TRACE_PLUGINS"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        return cls(pm, load_errors=errors, distributions=distributions)

    @property
    def hook(self) -> Any:
        """Decision and event hooks: ``plugins.hook.stepca_after_sign(...)``."""
        return self.pm.hook

    def _registry(self, kind: str) -> dict[str, type]:
        hook_name, where = _REGISTRATIONS[kind]
        base = pkgutil.resolve_name(where)
        found: dict[str, tuple[type, str]] = {}
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            for cls in impl.function() or []:
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise PluginLoadError(f"plugin '{self._label(impl.plugin_name)}' returned "
                                          f"{cls!r} from {hook_name}, which is not a "
                                          f"{base.__name__} subclass")
                key = str(cls.type).lower()
                if key in found and found[key][0] is not cls:
                    raise DuplicatePluginType(
                        f"{kind} type '{cls.type}' is provided by two plugins: "
                        f"'{self._label(found[key][1])}' and '{self._label(impl.plugin_name)}'; "
                        "uninstall or block one of them")
                found[key] = (cls, impl.plugin_name)
        return {key: cls for key, (cls, _) in found.items()}

    def _distribution(self, plugin_name: str) -> tuple[str, str] | None:
        """The name and version of the distribution an entry point came from: read when asked,
        since each read parses the distribution's METADATA (``step --help`` never asks)."""
        if plugin_name not in self._named and plugin_name in self._distributions:
            dist = self._distributions[plugin_name]
            metadata = dist.metadata if dist is not None else {}
            self._named[plugin_name] = (metadata.get("Name", "unknown distribution"),
                                        metadata.get("Version", ""))
        return self._named.get(plugin_name)

    def _label(self, plugin_name: str) -> str:
        dist = self._distribution(plugin_name)
        return f"{plugin_name} ({dist[0]} {dist[1]})" if dist else plugin_name

    def provisioner_types(self) -> dict[str, type[Provisioner]]:
        """Provisioner classes by lower-cased type."""
        return self._registry("provisioner")

    def provisioner_clients(self) -> dict[str, ClientRegistration]:
        """The client sides of provisioner types by lower-cased type (nothing imported yet)."""
        from stepca.provisioner_client import ClientRegistration

        found: dict[str, tuple[ClientRegistration, str]] = {}
        for impl in reversed(self.pm.hook.stepca_provisioner_clients.get_hookimpls()):
            for registration in impl.function() or []:
                if not isinstance(registration, ClientRegistration):
                    raise PluginLoadError(
                        f"plugin '{self._label(impl.plugin_name)}' returned {registration!r} "
                        "from stepca_provisioner_clients, which is not a ClientRegistration")
                key = registration.type.lower()
                if key in found and found[key][1] != impl.plugin_name:
                    raise DuplicatePluginType(
                        f"provisioner client type '{registration.type}' is provided by two "
                        f"plugins: '{self._label(found[key][1])}' and "
                        f"'{self._label(impl.plugin_name)}'; uninstall or block one of them")
                found[key] = (registration, impl.plugin_name)
        return {key: registration for key, (registration, _) in found.items()}

    def key_stores(self) -> dict[str, type[KeyStore]]:
        return self._registry("key store")

    def certificate_stores(self) -> dict[str, type[CertificateStore]]:
        return self._registry("certificate store")

    def revocation_stores(self) -> dict[str, type[RevocationStore]]:
        return self._registry("revocation store")

    def describe(self) -> list[PluginInfo]:
        """Every registered plugin: name, distribution, version and what it provides."""
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda item: str(item[0])):
            if plugin is None:
                continue
            provides = []
            for kind, (hook_name, _) in _REGISTRATIONS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is plugin:
                        provides += [f"{kind} {cls.type}" for cls in impl.function() or []]
            for impl in self.pm.hook.stepca_provisioner_clients.get_hookimpls():
                if impl.plugin is plugin:
                    provides += [f"provisioner client {registration.type}"
                                 for registration in impl.function() or []]
            for impl_hook in self.pm.get_hookcallers(plugin) or []:
                if impl_hook.name not in {*(h for h, _ in _REGISTRATIONS.values()),
                                          "stepca_provisioner_clients"}:
                    provides.append(f"hook {impl_hook.name}")
            dist, version = self._distribution(str(name)) or ("stepca", _core_version())
            infos.append(PluginInfo(str(name), dist, version, tuple(provides)))
        return infos


def _call_registrations(pm: pluggy.PluginManager, plugin: object) -> None:
    """Call ``plugin``'s registration hooks once, for what they import."""
    for hook_name, _ in _REGISTRATIONS.values():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin:
                impl.function()


def _core_version() -> str:
    from stepca import __version__
    return __version__
