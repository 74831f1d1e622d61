"""Keep the plugin documentation and the plugins' packaging honest, mechanically.

Every hook has a docstring and a signature-headed section in docs/plugin-hooks.md; every folder
in plugins/ follows the naming rule folder -> distribution -> package -> entry point; plugin
versions move in lockstep with the core.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import stepca
from stepca import hookspecs
from stepca.plugins import ENTRY_POINT_GROUP, Plugins

REPO = Path(__file__).resolve().parents[1]
HOOKS_DOC = REPO / "docs" / "plugin-hooks.md"
GUIDE = REPO / "docs" / "writing-a-plugin.md"
PLUGIN_DIRS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))
EXAMPLE = REPO / "tests" / "example_plugin"

# a Markdown heading whose text is `name(arg, ...)`
HEADING = re.compile(r"^#{2,4}\s+`(stepca_\w+)\(([^)]*)\)`\s*$", re.MULTILINE)


def _hooks() -> dict[str, Any]:
    hook = Plugins.load(load_entrypoints=False).pm.hook
    return {name: caller for name, caller in vars(hook).items() if name.startswith("stepca_")}


def _documented() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name, args in HEADING.findall(HOOKS_DOC.read_text()):
        assert name not in found, f"{name} has two sections in {HOOKS_DOC.name}"
        found[name] = tuple(a.strip() for a in args.split(",") if a.strip())
    return found


def _pyproject(folder: Path) -> dict[str, Any]:
    with open(folder / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def test_there_are_hooks_and_plugins_to_check() -> None:
    # guards the checks below against silently checking nothing
    # and against a family of the design card going missing
    families = {"stepca_provisioner_types", "stepca_key_stores", "stepca_certificate_stores",
                "stepca_revocation_stores", "stepca_cli_commands"}
    decisions_and_events = {f"stepca_{when}_{what}" for when in ("authorize", "after")
                            for what in ("sign", "renew", "revoke")}
    assert families | decisions_and_events <= set(_hooks())
    assert {"jwk", "store_sqlite"} <= {p.name for p in PLUGIN_DIRS}


@pytest.mark.parametrize("name", sorted(_hooks()))
def test_hookspec_has_a_docstring(name: str) -> None:
    spec = _hooks()[name].spec
    assert spec is not None, f"{name} is implemented but has no specification"
    assert inspect.getmodule(spec.function) is hookspecs
    assert (spec.function.__doc__ or "").strip(), f"{name} in hookspecs.py has no docstring"


@pytest.mark.parametrize("name", sorted(_hooks()))
def test_hook_has_a_section_headed_by_its_signature(name: str) -> None:
    argnames = tuple(_hooks()[name].spec.argnames)
    documented = _documented()
    expected = f"`{name}({', '.join(argnames)})`"
    assert name in documented, f"{HOOKS_DOC.name} has no section headed {expected}"
    assert documented[name] == argnames, (
        f"{HOOKS_DOC.name}: the heading of {name} lists {documented[name]}, the spec {argnames}")


def test_no_section_for_a_hook_that_does_not_exist() -> None:
    stale = set(_documented()) - set(_hooks())
    assert not stale, f"{HOOKS_DOC.name} documents hooks that do not exist: {sorted(stale)}"


@pytest.mark.parametrize("name", sorted(_hooks()))
def test_every_hook_is_called_by_stepca(name: str) -> None:
    # a hook nobody calls is a broken promise to plugin authors; registrations are called by
    # name through the registry in plugins.py, the others as pm.hook.<name>(...)
    sources = [p for folder in (REPO / "core" / "stepca", REPO / "cli" / "stepca_cli")
               for p in folder.rglob("*.py") if p.name != "hookspecs.py"]
    pattern = re.compile(rf"hook\.{name}\(|[\"']{name}[\"']")
    callers = [p.relative_to(REPO) for p in sources if pattern.search(p.read_text())]
    assert callers, f"no code in core/ or cli/ calls {name}"


@pytest.mark.parametrize("doc", [HOOKS_DOC, GUIDE], ids=lambda p: p.name)
def test_docs_call_only_real_hooks(doc: Path) -> None:
    # any `stepca_xxx(` in prose or examples must be a hook (catches renamed hooks in examples)
    called = set(re.findall(r"\b(stepca_\w+)\(", doc.read_text()))
    assert called, f"{doc.name} shows no hook"
    unknown = sorted(called - set(_hooks()))
    assert not unknown, f"{doc.name} uses unknown hooks {unknown}"


# -- packaging of plugins/* ------------------------------------------------------------------------

@pytest.mark.parametrize("folder", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_naming_is_mechanical(folder: Path) -> None:
    project = _pyproject(folder)["project"]
    short = folder.name
    assert project["name"] == f"stepca-{short.replace('_', '-')}"
    entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    assert entry_points == {short: f"stepca_{short}"}, (
        f"{folder.name}: want exactly {{{short!r}: 'stepca_{short}'}} in [project.entry-points."
        f"\"{ENTRY_POINT_GROUP}\"], got {entry_points}")
    assert (folder / f"stepca_{short}" / "__init__.py").is_file()


@pytest.mark.parametrize("folder", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_version_is_the_core_version(folder: Path) -> None:
    assert _pyproject(folder)["project"]["version"] == stepca.__version__
    assert _pyproject(REPO)["project"]["version"] == stepca.__version__


@pytest.mark.parametrize("folder", [*PLUGIN_DIRS, EXAMPLE], ids=lambda p: p.name)
def test_plugin_requires_a_core_range_holding_this_version(folder: Path) -> None:
    requirements = [Requirement(r) for r in _pyproject(folder)["project"]["dependencies"]]
    core = [r for r in requirements if r.name == "stepca"]
    assert len(core) == 1, f"{folder.name} must depend on stepca exactly once"
    assert core[0].specifier and core[0].specifier.contains(stepca.__version__)


@pytest.mark.parametrize("folder", [*PLUGIN_DIRS, EXAMPLE], ids=lambda p: p.name)
def test_plugin_folder_has_readme_and_package_less_tests(folder: Path) -> None:
    readme = folder / "README.md"
    assert readme.is_file() and readme.read_text().strip(), f"{folder.name} has no README.md"
    assert _pyproject(folder)["project"].get("readme") == "README.md"
    # an __init__.py would make every plugin's tests/ the same top-level package
    assert not list(folder.glob("tests/**/__init__.py"))
