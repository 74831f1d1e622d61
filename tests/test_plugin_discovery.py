"""Plugin discovery, tested the certbot way: synthetic distributions whose entry points name the
fake plugin modules in tests/fake_plugins, handed to ``Plugins.load`` in place of the installed
ones; and the real ``step plugins`` command in a subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

import stepca.plugins
from stepca import __version__
from stepca.plugins import (BUILTINS, ENTRY_POINT_GROUP, DuplicatePluginType, PluginLoadError,
                            Plugins)
from stepca.testing import TestCA, TestPKI
from stepca.testing.process import run_step

FAKES = Path(__file__).parent / "fake_plugins"
FAKE_MODULES = ("stepca_fake_good", "stepca_fake_missing_dependency", "stepca_fake_raises",
                "stepca_fake_deferred_missing",
                "stepca_fake_dup_a", "stepca_fake_dup_b", "stepca_fake_not_a_class",
                "stepca_fake_typo", "_fake_provisioner")

Dist = tuple[str, str, dict[str, str]]  # distribution name, version, {entry point: module}


def write_distributions(folder: Path,
                        dists: Iterable[Dist]) -> list[importlib.metadata.Distribution]:
    """Installed-looking ``.dist-info`` folders (METADATA and entry_points.txt) in ``folder``."""
    found = []
    for name, version, entry_points in dists:
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{ep} = {mod}\n"
                                                 for ep, mod in entry_points.items()))
        found.append(importlib.metadata.PathDistribution(info))
    return found


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    """``install(dist, ...)``: from now on the ``stepca.plugins`` group lists exactly these."""
    monkeypatch.syspath_prepend(str(FAKES))
    for module in FAKE_MODULES:  # each test imports the fakes afresh
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.delenv("STEPCA_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    real = importlib.metadata.entry_points

    def _install(*dists: Dist) -> None:
        distributions = write_distributions(tmp_path / "site", dists)

        def entry_points(**params: str) -> importlib.metadata.EntryPoints:
            if params.get("group") != ENTRY_POINT_GROUP:
                return real(**params)
            eps = [ep for dist in distributions for ep in dist.entry_points]
            return importlib.metadata.EntryPoints(eps).select(**params)

        monkeypatch.setattr(stepca.plugins.importlib.metadata, "entry_points", entry_points)

    return _install


GOOD: Dist = ("stepca-fake-good", "0.3.1", {"good": "stepca_fake_good"})


def names(plugins: Plugins) -> set[str]:
    return {str(name) for name, plugin in plugins.pm.list_name_plugin() if plugin is not None}


# -- load errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("module", "cause"), [
    ("stepca_fake_missing_dependency",
     "ModuleNotFoundError: No module named 'stepca_fake_dependency_that_is_not_installed'"),
    ("stepca_fake_raises", "RuntimeError: the vault address is not configured"),
])
def test_a_plugin_that_fails_to_import_is_one_line_and_the_rest_loads(
        install: Callable[..., None], module: str, cause: str) -> None:
    install(("stepca-fake-vault", "2.0.0", {"vault": module}), GOOD)
    plugins = Plugins.load()
    assert plugins.load_errors == [
        f"plugin 'vault' from distribution 'stepca-fake-vault' failed to load: {cause}"]
    assert "\n" not in plugins.load_errors[0]
    assert "good" in names(plugins) and "vault" not in names(plugins)
    assert set(plugins.provisioner_types()) == {"good"}


MISSING = "ModuleNotFoundError: No module named 'stepca_fake_dependency_that_is_not_installed'"


def test_a_class_that_fails_to_import_inside_its_hook_is_a_load_error_too(
        install: Callable[..., None]) -> None:
    # entry modules import their classes inside their hooks (decision 0043); loading calls the
    # hooks, so such a plugin is left out and reported as one that fails at the top
    install(("stepca-fake-vault", "2.0.0", {"vault": "stepca_fake_deferred_missing"}), GOOD)
    plugins = Plugins.load()
    assert plugins.load_errors == [
        f"plugin 'vault' from distribution 'stepca-fake-vault' failed to load: {MISSING}"]
    assert "good" in names(plugins) and "vault" not in names(plugins)
    assert set(plugins.provisioner_types()) == {"good"}


def test_lazy_loading_registers_without_calling_the_registration_hooks(
        install: Callable[..., None]) -> None:
    install(("stepca-fake-vault", "2.0.0", {"vault": "stepca_fake_deferred_missing"}), GOOD)
    plugins = Plugins.load(lazy=True)  # step: commands and clients, never classes
    assert plugins.load_errors == [] and {"good", "vault"} <= names(plugins)
    with pytest.raises(ModuleNotFoundError):
        plugins.provisioner_types()


def test_describe_names_distribution_version_and_what_a_plugin_provides(
        install: Callable[..., None]) -> None:
    install(GOOD)
    infos = {info.name: info for info in Plugins.load().describe()}
    assert infos["good"].distribution == "stepca-fake-good"
    assert infos["good"].version == "0.3.1"
    assert infos["good"].provides == ("provisioner GOOD", "hook stepca_after_sign")
    # the built-ins are part of the core distribution
    assert infos["stepca._softkms"].distribution == "stepca"
    assert infos["stepca._softkms"].version == __version__
    assert infos["stepca._softkms"].provides == ("key store softkms",)


def test_a_distributions_metadata_is_read_only_when_described(
        install: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    # each read parses METADATA with the email package: `step --help` never needs it
    install(GOOD)
    reads: list[str] = []
    real = importlib.metadata.PathDistribution.read_text

    def counted(self: importlib.metadata.PathDistribution, filename: str) -> str | None:
        reads.append(filename)
        return real(self, filename)

    monkeypatch.setattr(importlib.metadata.PathDistribution, "read_text", counted)
    plugins = Plugins.load()
    assert "METADATA" not in reads
    infos = {info.name: info for info in plugins.describe()}
    assert (infos["good"].distribution, infos["good"].version) == ("stepca-fake-good", "0.3.1")
    plugins.describe()
    assert reads.count("METADATA") == 1  # read once, for both fields


def test_a_registration_that_is_not_a_subclass_is_refused(install: Callable[..., None]) -> None:
    install(("stepca-fake-kms", "1.0", {"kms": "stepca_fake_not_a_class"}))
    plugins = Plugins.load()
    with pytest.raises(PluginLoadError) as refused:
        plugins.key_stores()
    message = str(refused.value)
    assert "plugin 'kms (stepca-fake-kms 1.0)'" in message
    assert "'vaultkms'" in message and "not a KeyStore subclass" in message


def test_a_misspelled_hook_is_left_out_and_reported(install: Callable[..., None]) -> None:
    install(("stepca-fake-typo", "1.0", {"typo": "stepca_fake_typo"}))
    plugins = Plugins.load()
    assert plugins.pm.get_plugin("typo") is None
    assert len(plugins.load_errors) == 1
    error = plugins.load_errors[0]
    assert error.startswith("plugin 'typo' from distribution 'stepca-fake-typo' failed to load: ")
    assert "stepca_provisioner_type" in error and "\n" not in error


# -- duplicates ------------------------------------------------------------------------------------

DUP_A: Dist = ("stepca-fake-a", "1.0", {"fake_a": "stepca_fake_dup_a"})
DUP_B: Dist = ("stepca-fake-b", "2.5", {"fake_b": "stepca_fake_dup_b"})


def test_two_plugins_claiming_one_provisioner_type_are_refused_naming_both(
        install: Callable[..., None]) -> None:
    install(DUP_A, DUP_B)
    plugins = Plugins.load()
    assert plugins.load_errors == []
    with pytest.raises(DuplicatePluginType) as refused:
        plugins.provisioner_types()
    message = str(refused.value)
    assert "provisioner type" in message
    assert "'fake_a (stepca-fake-a 1.0)'" in message
    assert "'fake_b (stepca-fake-b 2.5)'" in message


def test_the_ca_refuses_to_start_with_duplicate_types(install: Callable[..., None],
                                                      stepca_pki: TestPKI,
                                                      tmp_path: Path) -> None:
    install(DUP_A, DUP_B)
    config = stepca_pki.config(tmp_path, db={"type": "memory"})
    with pytest.raises(DuplicatePluginType) as refused:
        TestCA(config)
    assert "stepca-fake-a" in str(refused.value) and "stepca-fake-b" in str(refused.value)


def test_blocking_one_of_the_duplicates_resolves_the_clash(install: Callable[..., None]) -> None:
    install(DUP_A, DUP_B)
    types = Plugins.load(blocked=["fake_b"]).provisioner_types()
    assert list(types) == ["fake"] and types["fake"].type == "FAKE"


# -- blocking and disabling ------------------------------------------------------------------------

def test_blocked_names_are_skipped_without_importing(install: Callable[..., None]) -> None:
    install(("stepca-fake-vault", "2.0.0", {"vault": "stepca_fake_raises"}), GOOD)
    plugins = Plugins.load(blocked=["vault", "good"])
    assert plugins.load_errors == []  # the failing module was never imported
    assert plugins.pm.is_blocked("vault") and plugins.pm.is_blocked("good")
    assert "stepca_fake_good" not in sys.modules
    assert names(plugins) == set(BUILTINS)


def test_a_built_in_can_be_blocked(install: Callable[..., None]) -> None:
    install(GOOD)
    plugins = Plugins.load(blocked=["stepca._memory_store"])
    assert "memory" not in plugins.certificate_stores()
    assert "softkms" in plugins.key_stores()


def test_autoload_is_disabled_by_the_environment(install: Callable[..., None],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    install(GOOD)
    assert "good" in names(Plugins.load())
    monkeypatch.setenv("STEPCA_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert names(Plugins.load()) == set(BUILTINS)
    # an explicit argument wins over the environment (tests and embedding)
    assert "good" in names(Plugins.load(load_entrypoints=True))


def test_in_process_plugins_need_no_entry_point(install: Callable[..., None]) -> None:
    install()
    import stepca_fake_good

    plugins = Plugins.load(plugins=[stepca_fake_good], load_entrypoints=False)
    assert set(plugins.provisioner_types()) == {"good"}


def test_plugin_managers_share_no_state(install: Callable[..., None]) -> None:
    install(GOOD)
    with_good = Plugins.load()
    blocked = Plugins.load(blocked=["good", "stepca._memory_store"])
    # loading (and blocking in) the second manager left the first as it was
    assert "good" in names(with_good) and "memory" in with_good.certificate_stores()
    assert "good" not in names(blocked) and "memory" not in blocked.certificate_stores()
    assert with_good.pm is not blocked.pm and not with_good.pm.is_blocked("good")


# -- the real `step plugins` -----------------------------------------------------------------------

def _step_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STEP") and k != "PYTHONPATH"}
    return {**env, **extra}


def test_step_plugins_lists_the_installed_plugins(tmp_path: Path) -> None:
    env = _step_env(STEPPATH=str(tmp_path))
    text = run_step("plugins", env=env)
    assert text.stderr == ""
    lines = text.stdout.splitlines()
    for header, provides in (
            (f"jwk  stepca-jwk {__version__}",
             ["    provisioner JWK", "    provisioner client JWK"]),
            (f"store_sqlite  stepca-store-sqlite {__version__}",
             ["    certificate store sqlite", "    revocation store sqlite"]),
            (f"stepca._softkms  stepca {__version__}", ["    key store softkms"])):
        assert header in lines, text.stdout
        start = lines.index(header) + 1
        assert lines[start:start + len(provides)] == provides

    listed = {p["name"]: p for p in json.loads(run_step("plugins", "--json", env=env).stdout)}
    assert listed["jwk"] == {"name": "jwk", "distribution": "stepca-jwk",
                             "version": __version__,
                             "provides": ["provisioner JWK", "provisioner client JWK"]}
    assert listed["store_sqlite"]["provides"] == ["certificate store sqlite",
                                                  "revocation store sqlite"]


# broken at the top of its entry module, or inside its registration hook (decision 0043)
@pytest.mark.parametrize("module", ["stepca_fake_missing_dependency",
                                    "stepca_fake_deferred_missing"])
def test_step_plugins_reports_a_broken_plugin_and_lists_the_rest(tmp_path: Path,
                                                                  module: str) -> None:
    # a real (if hand-made) installation: a .dist-info on PYTHONPATH, no monkeypatching
    site = tmp_path / "site"
    write_distributions(site, [("stepca-fake-vault", "2.0.0", {"vault": module}), GOOD])
    env = _step_env(STEPPATH=str(tmp_path), PYTHONPATH=os.pathsep.join([str(site), str(FAKES)]))
    result = run_step("plugins", env=env)
    expected = ("plugin 'vault' from distribution 'stepca-fake-vault' failed to load: "
                "ModuleNotFoundError: No module named "
                "'stepca_fake_dependency_that_is_not_installed'")
    assert f"error: {expected}" in result.stderr.splitlines()
    # however often the CLI reports it, each report is one whole line
    reports = [line for line in result.stderr.splitlines() if "vault" in line]
    assert reports and all(line.endswith(expected) for line in reports)
    assert "good  stepca-fake-good 0.3.1" in result.stdout.splitlines()
    assert "jwk  stepca-jwk" in result.stdout and "vault" not in result.stdout


def test_step_plugins_with_autoload_disabled_lists_only_the_built_ins(tmp_path: Path) -> None:
    env = _step_env(STEPPATH=str(tmp_path), STEPCA_DISABLE_PLUGIN_AUTOLOAD="1")
    listed = json.loads(run_step("plugins", "--json", env=env).stdout)
    assert [p["name"] for p in listed] == sorted(BUILTINS)
    assert {p["distribution"] for p in listed} == {"stepca"}
