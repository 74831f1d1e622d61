"""`step` starts without importing what the command it runs does not use (issue 17, decision
0041): its subcommands are loaded lazily, and plugins only when something needs them. The
command tree and every help page are those of the whole tree loaded at once; the modules a
command imports are those in ``sys.modules`` when it exits. No timing is asserted here
(benchmarks/cli.py measures it)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from stepca.plugins import ENTRY_POINT_GROUP
from stepca.testing.process import run_step

TREE = Path(__file__).with_name("cli_tree.py")

# the HTTP stack, plugin discovery and the modules of other commands
HTTP = {"stepca_cli.httpclient", "urllib.request", "http.client", "ssl", "requests", "urllib3"}
DISCOVERY = {"importlib.metadata", "stepca.plugins"}
COMMAND_MODULES = {"stepca_cli.commands.ca", "stepca_cli.commands.certificate_tools",
                   "stepca_cli.commands.lifecycle", "stepca_cli.commands.crypto",
                   "stepca_cli.commands.crl", "stepca_cli.crypto_jose", "stepca_cli.crypto_keys",
                   "stepca_cli.tokens", "stepca_cli.truststores", "stepca_cli.oauth",
                   "stepca_cli.commands.provisioner", "stepca_cli.provisioner_config"}
# what `step version` and `step path` must not import (`step version` reads
# stepca.__version__, and "stepca" imports pluggy only for its hookimpl marker)
START_UP = {*HTTP, *DISCOVERY, *COMMAND_MODULES, "cryptography", "stepca.jose", "jose",
            "joserfc", "stepca.config", "stepca_cli.inspect_format", "stepca_cli.commands.inspect",
            "pluggy", "stepca_cli.helppage"}  # help pages are built only when help is shown


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP") and k != "PYTHONPATH"}
    return {**env, "STEPPATH": str(tmp_path / "step"), **extra}


def imported_by(args: list[str], env: dict[str, str], cwd: Path | None = None) -> set[str]:
    """The modules in ``sys.modules`` when ``step <args>`` exits: whatever it imported, at
    start-up or later."""
    code = ("import atexit, json, os, sys\n"
            "def report():\n"
            "    with open(os.environ['IMPORTED_TO'], 'w') as out:\n"
            "        json.dump(sorted(sys.modules), out)\n"
            "atexit.register(report)\n"
            "from stepca_cli.main import main\n"
            "main()\n")
    listing = Path(env.get("STEPPATH", ".")).with_name("imported.json")
    done = subprocess.run([sys.executable, "-c", code, *args],
                          env={**env, "IMPORTED_TO": str(listing)}, cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    names = set(json.loads(listing.read_text()))
    assert "click" in names  # the listing was read: guards against checking nothing
    return names


# -- the tree is the whole tree's ------------------------------------------------------------------

def _tree(mode: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, str(TREE), mode], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_lazily_loaded_tree_and_pages_equal_the_eagerly_loaded_ones(tmp_path: Path) -> None:
    env = _env(tmp_path)
    eager, lazy = _tree("eager", env), _tree("lazy", env)
    assert eager["unreached"] == [] and eager["misnamed"] == []
    pages = eager["pages"]
    assert len(pages) > 100 and {"step", "step ca", "step ca renew", "step certificate inspect",
                                 "step certificate needs-renewal", "step crypto jwt sign",
                                 "step base64", "step version"} <= set(pages)
    assert list(lazy["pages"]) == list(pages)  # the same paths, in the same order
    for path, expected in pages.items():
        assert lazy["pages"][path] == expected, path
    assert "COMMANDS" in pages["step ca"]["help"] and "--ca-url" in pages["step ca token"]["help"]


# -- what each command imports ---------------------------------------------------------------------

@pytest.mark.parametrize("args", [["version"], ["--version"], ["path"], ["path", "--base"]])
def test_version_and_path_import_no_heavy_module(args: list[str], tmp_path: Path) -> None:
    heavy = imported_by(args, _env(tmp_path)) & START_UP
    assert not heavy, f"step {' '.join(args)} imports {sorted(heavy)}"


@pytest.mark.parametrize("args", [["version"], ["--version"]])
def test_version_reads_no_context(args: list[str], tmp_path: Path) -> None:
    # the version does not depend on $(step path): contexts and pathlib stay unloaded
    loaded = imported_by(args, _env(tmp_path)) & {"stepca_cli.context", "pathlib"}
    assert not loaded, f"step {' '.join(args)} imports {sorted(loaded)}"


# what a plugin's entry module and the built-ins import only when their classes are asked for
# (decision 0043): the provisioners with JOSE, the stores, cryptography, ca.json's schema
PLUGIN_CLASSES = {"cryptography", "stepca.jose", "jose", "joserfc", "stepca.config",
                  "stepca.provisioner", "stepca.x509util", "stepca.remote_keys", "sqlite3",
                  "stepca.store", "stepca.memory_store", "stepca.sqlstore",
                  "stepca_store_sqlite.store", "stepca_store_postgresql.store",
                  "psycopg", *(f"stepca_{name}.provisioner"
                               for name in ("aws", "azure", "gcp", "jwk", "oidc"))}


def test_help_lists_plugins_but_imports_no_other_command(tmp_path: Path) -> None:
    names = imported_by(["--help"], _env(tmp_path))
    # the plugins are loaded: they may add commands
    assert {"stepca_jwk", "stepca_store_sqlite", "stepca._memory_store"} <= names
    heavy = names & (COMMAND_MODULES | HTTP - {"ssl", "http.client", "urllib.request"}
                     | {"stepca_cli.inspect_format", "stepca_jwk.client"} | PLUGIN_CLASSES)
    assert not heavy, f"step --help imports {sorted(heavy)}"


def _self_signed(path: Path) -> Path:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c")])
    now = datetime.now(UTC)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now).not_valid_after(now + timedelta(days=1))
           .sign(key, hashes.SHA256()))
    path.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    return path


def test_certificate_inspect_imports_neither_http_nor_plugins(tmp_path: Path) -> None:
    crt = _self_signed(tmp_path / "c.crt")
    names = imported_by(["certificate", "inspect", "--short", str(crt)], _env(tmp_path))
    assert "stepca_cli.inspect_format" in names
    # cryptography's serialization imports its SSH keys and bcrypt: inspect needs neither
    heavy = names & (HTTP | DISCOVERY | COMMAND_MODULES | {
        "stepca.jose", "stepca.config", "pluggy", "cryptography.hazmat.primitives.serialization",
        "bcrypt"})
    assert not heavy, f"step certificate inspect imports {sorted(heavy)}"


@pytest.mark.e2e
def test_ca_certificate_with_a_token_loads_no_plugin(tmp_path: Path) -> None:
    from stepca.testing import make_token
    from stepca.testing.http import running_ca

    with running_ca(tmp_path / "ca") as ca:
        url = f"https://127.0.0.1:{ca.port}"
        token = make_token(ca.pki, "svc.internal", sans=["svc.internal"],
                           audience=f"{url}/1.0/sign")
        env = _env(tmp_path, STEP_CA_URL=url, STEP_ROOT=str(ca.root))
        names = imported_by(["ca", "certificate", "svc.internal", "svc.crt", "svc.key",
                             "--token", token], env, cwd=tmp_path)
    assert (tmp_path / "svc.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "stepca_cli.httpclient" in names
    # reading the token's claims needs no JOSE library (decision 0043)
    heavy = names & (DISCOVERY | {"stepca_jwk", "stepca.config", "stepca_cli.tokens",
                                  "stepca_cli.truststores", "stepca_cli.commands.lifecycle",
                                  "stepca_cli.inspect_format", "requests", "urllib3", "jose",
                                  "joserfc", "pluggy", "stepca_cli.commands.provisioner",
                                  "stepca_cli.provisioner_config"})
    assert not heavy, f"step ca certificate --token imports {sorted(heavy)}"


def test_a_ca_request_loads_only_the_given_root(tmp_path: Path) -> None:
    # the context kept for path building verifies nothing, so it loads no roots: the
    # system's bundle cost every CA command about 20 ms
    from stepca_cli import httpclient

    root = _self_signed(tmp_path / "root.crt")
    context = httpclient.tls_context(cafile=str(root))
    assert context.cert_store_stats()["x509"] == 1
    relaxed = context.stepca_path_building.context  # type: ignore[attr-defined]
    assert relaxed.verify_mode == ssl.CERT_NONE and not relaxed.check_hostname
    assert relaxed.cert_store_stats() == {"x509": 0, "crl": 0, "x509_ca": 0}
    insecure = httpclient.tls_context(insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE and insecure.cert_store_stats()["x509"] == 0
    assert insecure.minimum_version == relaxed.minimum_version == ssl.TLSVersion.TLSv1_2


# -- plugins' commands -----------------------------------------------------------------------------

PLUGIN = '''
import os

import click

from stepca import hookimpl

with open(os.environ["FAKE_CLI_IMPORTED"], "a") as marker:
    marker.write("imported\\n")


@click.command()
def hello():
    """say hello from a plugin"""
    click.echo("hello from the plugin")


@click.command(name="version")
def not_the_version():
    """a plugin's command that takes a built-in name"""
    click.echo("the plugin's version")


@hookimpl
def stepca_cli_commands(cli):
    cli.add_command(hello)
    cli.add_command(not_the_version)
'''


@pytest.fixture
def plugin_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An installed-looking distribution whose plugin adds `step hello` (and tries `step
    version`), plus one whose module is missing; the first writes a line to a file whenever it
    is imported."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "stepca_fake_cli.py").write_text(PLUGIN)
    for dist, entry in (("stepca_fake_cli-1.0", "fake_cli = stepca_fake_cli"),
                        ("stepca_fake_gone-1.0", "gone = stepca_fake_module_that_is_not_there")):
        info = site / f"{dist}.dist-info"
        info.mkdir()
        name, version = dist.split("-")
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry}\n")
    marker = tmp_path / "imported.txt"
    return _env(tmp_path, PYTHONPATH=str(site), FAKE_CLI_IMPORTED=str(marker)), marker


def test_a_plugins_command_is_listed_and_runs_and_the_plugin_is_imported_only_then(
        plugin_env: tuple[dict[str, str], Path]) -> None:
    env, marker = plugin_env
    for args in (["version"], ["path"], ["certificate", "--help"]):
        run_step(*args, env=env)
    assert not marker.exists()  # no command above needed a plugin

    listed = run_step("--help", env=env)
    assert marker.read_text() == "imported\n"
    assert "    hello         say hello from a plugin" in listed.stdout.splitlines()
    warnings = listed.stderr.splitlines()
    assert "warning: a plugin's command 'version' is ignored: step has a built-in command of " \
           "that name" in warnings
    assert any(line.startswith("warning: plugin 'gone' from distribution 'stepca_fake_gone' "
                               "failed to load: ModuleNotFoundError") for line in warnings)

    assert run_step("hello", env=env).stdout == "hello from the plugin\n"
    assert run_step("version", env=env).stdout.startswith("stepca CLI/")
    # an unknown name may be a plugin's: the plugins are loaded to say so
    unknown = run_step("hellp", env=env, check=False)
    assert unknown.returncode != 0 and "(Did you mean one of: 'hello', 'help'?)" in unknown.stderr
