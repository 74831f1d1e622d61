"""What the code takes from its dependencies is declared, and exists in the installed versions.

Read from the source, not from a run: every `import` of a third-party module belongs to a
distribution that the importing part of the project declares (the core and CLI in `stepca`'s
dependencies, a plugin in its own, tests and benchmarks may also use the `test` extra), and every
dotted name the code takes from one (`verification.ExtensionPolicy.webpki_defaults_ca`,
`falcon.HTTP_201`, `click.Path`) resolves, not deprecated, in the installed version. In the
ordinary run those are the newest versions allowed, so a name a release removes or deprecates
fails here; in tests/test_lowest_versions.py they are the lowest allowed, so a floor set below
the API the code uses fails here, naming the dependency and its version. Code paths no test
reaches are checked too. Attributes of instances (`certificate.not_valid_after_utc`) are left to
the tests that run the code. A line that uses a deprecated name on purpose (a test that a client's
DSA key is refused) says so with the comment `# deprecated on purpose`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))
EXAMPLE = REPO / "tests" / "example_plugin"
# plugins written to fail at import (tests/test_plugin_discovery.py): their imports are the point
DELIBERATELY_BROKEN = REPO / "tests" / "fake_plugins"
DEPRECATED_ON_PURPOSE = "# deprecated on purpose"
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
          ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(folder: Path, extra: str | None = None) -> set[str]:
    with open(folder / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {_normal(Requirement(r).name) for r in listed}


def _areas() -> list[tuple[Path, set[str]]]:
    """Each source folder with the distributions it may import from (its own and the core)."""
    core = _requirements(REPO) | {"stepca"}
    tests = core | _requirements(REPO, "test")
    areas = [(REPO / "core", core), (REPO / "cli", core), (REPO / "tests", tests),
             # the pytest plugin and contract suites, loaded only by a test run
             (REPO / "core" / "stepca" / "testing", core | _requirements(REPO, "test")),
             (REPO / "benchmarks", tests), (EXAMPLE / "tests", tests | {"stepca-example-hmac"}),
             (EXAMPLE, _requirements(EXAMPLE) | {"stepca-example-hmac"})]
    for folder in PLUGIN_DIRS:
        own = _requirements(folder) | {f"stepca-{folder.name.replace('_', '-')}"}
        areas += [(folder / "tests", tests | own), (folder, own)]
    return areas


@dataclass
class Scope:
    """One Python scope: the names it binds by import and the names it binds otherwise."""

    parent: Scope | None
    is_class: bool = False
    imported: dict[str, str] = field(default_factory=dict)  # local name -> dotted target
    bound: set[str] = field(default_factory=set)

    def target(self, name: str) -> str | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.bound:
                return None  # a parameter or variable of that name, not the import
            if name in scope.imported:
                return scope.imported[name]
            scope = scope.parent
            while scope is not None and scope.is_class and scope is not self:
                scope = scope.parent  # methods do not see class-level names
        return None


@dataclass(frozen=True)
class Use:
    dotted: str
    path: Path
    line: int
    deprecated_on_purpose: bool = False

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.dotted}"


def _parameters(args: ast.arguments) -> list[ast.arg]:
    return [*args.posonlyargs, *args.args, *args.kwonlyargs,
            *filter(None, [args.vararg, args.kwarg])]


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.uses: list[Use] = []

    def read(self) -> list[Use]:
        source = self.path.read_text()
        self.on_purpose = {number for number, line in enumerate(source.splitlines(), start=1)
                           if DEPRECATED_ON_PURPOSE in line}
        tree = ast.parse(source, str(self.path))
        self._scope(tree, Scope(None))
        return self.uses

    def _own(self, node: ast.AST) -> Iterator[ast.AST]:
        """The nodes of one scope: a nested scope's own parts (body, parameters) are left for
        its own pass, what the enclosing scope evaluates (decorators, defaults, bases) is not."""
        stack = list(ast.iter_child_nodes(node))
        while stack:
            child = stack.pop()
            yield child
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = child.args
                stack += [*child.decorator_list, *args.defaults,
                          *(d for d in args.kw_defaults if d is not None),
                          *(a.annotation for a in _parameters(args) if a.annotation),
                          *filter(None, [child.returns])]
            elif isinstance(child, ast.ClassDef):
                stack += [*child.decorator_list, *child.bases, *child.keywords]
            elif isinstance(child, ast.Lambda):
                stack += [*child.args.defaults]
            elif not isinstance(child, SCOPES):
                stack += ast.iter_child_nodes(child)

    def _scope(self, node: ast.AST, scope: Scope) -> None:
        nodes = list(self._own(node))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            scope.bound |= {a.arg for a in _parameters(node.args)}
        for child in nodes:
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.asname:
                        scope.imported[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        scope.imported[top] = top
                    self._use(alias.name, child)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:
                    if alias.name != "*":
                        scope.imported[alias.asname or alias.name] = f"{child.module}.{alias.name}"
                        self._use(f"{child.module}.{alias.name}", child)
            elif isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
                scope.bound.add(child.id)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                    ast.ExceptHandler)) and child.name:
                scope.bound.add(child.name)
        for child in nodes:
            if isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Load):
                chain = [child.attr]
                value = child.value
                while isinstance(value, ast.Attribute):
                    chain.insert(0, value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and (target := scope.target(value.id)):
                    self._use(".".join([target, *chain]), child)
            elif isinstance(child, SCOPES):
                self._scope(child, Scope(scope, is_class=isinstance(child, ast.ClassDef)))

    def _use(self, dotted: str, node: ast.AST) -> None:
        line = getattr(node, "lineno", 0)
        self.uses.append(Use(dotted, self.path, line, line in self.on_purpose))


def _sources(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*.py")):
        if not path.is_relative_to(DELIBERATELY_BROKEN) and ".venv" not in path.parts:
            yield path


def _local_modules() -> set[str]:
    """Top-level modules and packages defined in this repository: its own distributions, and
    what tests and benchmarks import by putting a folder on sys.path (benchmarks/_harness.py)."""
    found = set()
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts:
            continue
        if not (path.parent / "__init__.py").exists():
            found.add(path.stem)
        elif not (path.parent.parent / "__init__.py").exists():
            found.add(path.parent.name)
    return found


def _third_party(dotted: str) -> str | None:
    top = dotted.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__" or top in LOCAL:
        return None
    return top


LOCAL = _local_modules()
DISTRIBUTIONS = importlib.metadata.packages_distributions()


def _uses() -> dict[Path, list[Use]]:
    """The uses of each area, each file read once, in the innermost area holding it."""
    found: dict[Path, list[Use]] = {}
    done: set[Path] = set()
    for folder, _ in sorted(_areas(), key=lambda area: -len(area[0].parts)):
        found[folder] = []
        for path in _sources(folder):
            if path not in done:
                done.add(path)
                found[folder] += sorted((u for u in _Reader(path).read() if _third_party(u.dotted)),
                                        key=lambda u: u.line)
    return found


USES = _uses()


def _distribution(module: str) -> str:
    names = DISTRIBUTIONS.get(module)
    return _normal(names[0]) if names else module


def _version(module: str) -> str:
    names = DISTRIBUTIONS.get(module)
    return f"{names[0]}=={importlib.metadata.version(names[0])}" if names else module


def test_the_source_is_read() -> None:
    # guards the checks below against reading nothing
    everything = {u.dotted for uses in USES.values() for u in uses}
    assert {"cryptography.x509.verification.ExtensionPolicy.webpki_defaults_ca",
            "gunicorn.app.base.BaseApplication", "falcon.App", "click.Path",
            "argon2.low_level.hash_secret", "nacl.secret.SecretBox"} <= everything
    assert not {u for u in everything if u.split(".")[0] in ("json", "stepca", "_harness")}


def test_a_parameter_or_variable_hides_the_import_of_its_name(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("from pkilint.pkix import name\nimport click\n\n"
                      "def parse(name):\n    return name.strip()\n\n"
                      "@click.command()\ndef lint():\n    return name.ATTRIBUTE_TYPE_MAPPINGS\n\n"
                      "class Shadow:\n    click = None\n\n    def run(self):\n"
                      "        return [click.echo for click in ()], click.Path\n")
    assert {use.dotted for use in _Reader(source).read()} == {
        "pkilint.pkix.name", "click", "click.command", "click.Path",
        "pkilint.pkix.name.ATTRIBUTE_TYPE_MAPPINGS"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    undeclared: dict[tuple[Path, str], str] = {}
    for folder, allowed in _areas():
        for use in USES[folder]:
            distribution = _distribution(use.dotted.split(".")[0])
            if distribution not in allowed:
                undeclared.setdefault((use.path, distribution), (
                    f"{use}: {distribution} is not declared in the pyproject.toml that ships "
                    f"{folder.relative_to(REPO)}"))
    if undeclared:
        pytest.fail("\n".join(sorted(undeclared.values())), pytrace=False)


def _attribute(owner: str, value: object, name: str) -> tuple[object, str | None]:
    """`value.name`, or why the code cannot rely on it (absent, or deprecated in this version)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = getattr(value, name, _ABSENT)
    if found is _ABSENT:
        return found, f"{owner} has no {name!r}"
    deprecated = [w for w in caught if issubclass(w.category, (DeprecationWarning,
                                                               PendingDeprecationWarning,
                                                               FutureWarning))
                  or "deprecat" in w.category.__name__.lower()]
    return found, f"{owner}.{name} is deprecated: {deprecated[0].message}" if deprecated else None


_ABSENT = object()


def _missing(dotted: str, deprecated_on_purpose: bool = False) -> str | None:
    """Why the installed distribution does not provide `dotted`, or None if every part resolves
    (attributes of instances, functions and constants are not followed)."""
    parts = dotted.split(".")
    try:
        value: object = importlib.import_module(parts[0])
    except ImportError as exc:
        return f"{parts[0]} cannot be imported ({exc})"
    for index, part in enumerate(parts[1:], start=1):
        owner = ".".join(parts[:index])
        if not isinstance(value, (types.ModuleType, type)):
            break
        found, why = _attribute(owner, value, part)
        if found is _ABSENT and isinstance(value, types.ModuleType):
            try:  # a submodule its package does not import
                found, why = importlib.import_module(f"{owner}.{part}"), None
            except ImportError as exc:
                if exc.name != f"{owner}.{part}":
                    return f"{owner}.{part} cannot be imported ({exc})"
        if why is not None and not (deprecated_on_purpose and found is not _ABSENT):
            return why
        value = found
    return None


def test_every_name_taken_from_a_dependency_exists_in_the_installed_version() -> None:
    missing = {}
    for uses in USES.values():
        for use in uses:
            if (why := _missing(use.dotted, use.deprecated_on_purpose)) is not None:
                missing.setdefault(why, (use, _version(use.dotted.split(".")[0])))
    if missing:
        pytest.fail("\n".join(f"{use}: {why} in {version}"
                              for why, (use, version) in sorted(missing.items())), pytrace=False)


def test_a_deprecated_name_fails_unless_its_line_says_it_is_on_purpose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "aging.py").write_text(
        "import warnings\n\ndef __getattr__(name):\n    if name == 'old':\n"
        "        warnings.warn('old is deprecated', DeprecationWarning, stacklevel=2)\n"
        "        return 1\n    raise AttributeError(name)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "module.py"
    source.write_text("import aging\n\nA = aging.old\nB = aging.old  # deprecated on purpose\n"
                      "C = aging.gone  # deprecated on purpose\n")
    uses = {use.line: use for use in _Reader(source).read() if use.dotted != "aging"}
    assert _missing(uses[3].dotted, uses[3].deprecated_on_purpose) == (
        "aging.old is deprecated: old is deprecated")
    assert _missing(uses[4].dotted, uses[4].deprecated_on_purpose) is None
    assert _missing(uses[5].dotted, uses[5].deprecated_on_purpose) == "aging has no 'gone'"
