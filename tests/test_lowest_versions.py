"""The floors in pyproject.toml are true: a fresh virtual environment gets stepca, its test extra
and the in-tree plugins with the LOWEST version every direct dependency allows
(`uv pip install --resolution lowest-direct`; indirect ones at their newest), and that
environment's interpreter runs the end-to-end walkthrough, the tests that show why a floor is
where it is (TESTS), and the check that every name the code takes from a dependency exists.

A floor below what the code needs fails here, with the versions installed and, when a traceback
or an import error names one, the distribution that broke.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from stepca.testing.process import Venv

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))
OIDC_PROVIDER = REPO / "core" / "stepca" / "testing" / "oidc" / "provider"
# What runs on the lowest versions, and which floors it shows to be true.
TESTS = {
    "tests/test_walkthrough.py": "step-ca under gunicorn (control_socket_disable, 25.1), uvloop, "
                                 "httptools, falcon, click, requests; joserfc keys (1.6)",
    "tests/test_worker.py::test_both_workers_pass_the_client_certificate_to_renew":
        "gthread parsing with gunicorn_h1c (gunicorn 25.2)",
    "tests/test_certificate_tools.py::test_verify_success_is_silent_and_verbose_prints_steps":
        "cryptography's verification policies (45)",
    "tests/test_certificate_tools.py::test_lint_clean_certificate": "pkilint",
    "tests/test_jose.py": "python-jose signs with RSA key objects (3.5), joserfc",
    "tests/test_sign_refusals.py::test_malformed_json": "orjson refuses deep nesting (3.9.15)",
    "tests/test_crypto_cli.py::test_kdf_refusals": "bcrypt refuses passwords over 72 bytes (5)",
    "tests/test_crypto_cli.py::test_pbes2_jwe_both_ways": "jwcrypto's PBES2 limit (1.5.1)",
    "tests/test_dependencies.py": "every name the code takes from every dependency",
    "tests/test_openapi.py": "schemathesis's 4.x Python API drives docs/openapi.yaml (4.0)",
    "tests/test_observability.py::test_metrics_count_every_worker_by_route_provisioner_and_outcome":
        "prometheus_client's multiprocess mode summed over workers (0.20)",
    "plugins/gcp/tests/test_client.py": "google-auth's metadata identity endpoint (2.20)",
    "plugins/aws/tests/test_client.py": "botocore's IMDS fetcher honours "
                                        "ec2_metadata_v1_disabled (1.32.4)",
    "plugins/azure/tests/test_client.py": "azure-identity's managed identity credential without "
                                          "msal's deprecated TokenCache.find (1.18)",
    "tests/test_oidc_infra.py": "playwright drives Debian's Chromium through a sign-in (1.26)",
    "plugins/store_postgresql/tests/test_contract.py": "psycopg-pool's connection check (3.2), "
                                                       "psycopg's [binary] extra (3.2.1)",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _direct_requirements() -> list[str]:
    names = []
    for folder in [REPO, *PLUGINS]:
        with open(folder / "pyproject.toml", "rb") as handle:
            project = tomllib.load(handle)["project"]
        listed = project["dependencies"] + project.get("optional-dependencies", {}).get("test", [])
        names += [Requirement(r).name for r in listed if Requirement(r).name != "stepca"]
    return sorted(set(names), key=str.lower)


@pytest.fixture(scope="module")
def lowest(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = Venv.create(tmp_path_factory.mktemp("lowest") / "venv", pip=False)
    # no cache: CI starts from a fresh clone, and nothing is kept outside the project
    venv.uv_install("--resolution", "lowest-direct", "--no-cache",
                    f"{REPO}[test]", *map(str, PLUGINS))
    return venv


def _installed(venv: Venv) -> dict[str, object]:
    """Each installed distribution's version, and the distributions of each top-level module."""
    return venv.python_json(
        "import importlib.metadata as m, json\n"
        "print(json.dumps({'versions': {d.metadata['Name']: d.version\n"
        "                               for d in m.distributions()},\n"
        "                  'modules': m.packages_distributions()}))\n")


# a frame as Python prints it (also inside a message pytest prefixes with "E"), or as --tb=short
FRAME = re.compile(r'^(?:E?\s*File "(?P<path>[^"]+)", line \d+|(?P<short>\S+\.py):\d+: in )')
SITE_MODULE = re.compile(r"/site-packages/(?P<module>[A-Za-z_]\w*)")
ERROR = re.compile(r"^(?:E\s+)?(?P<line>(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Warning)\b:?"
                   r"(?P<msg>.*))")
NAMED = re.compile(r"(?:from|module|named) '(?P<module>[A-Za-z_][\w.]*)'"
                   r"|'(?P<owner>[A-Za-z_][\w.]*)' object has no attribute")
# a line of tests/test_dependencies.py: "<file>:<line>: <name>: <why> in <distribution>==<version>"
FINDING = re.compile(r"^\S+\.py:\d+: \S+: (?P<line>.+ in (?P<dist>[\w.-]+)==\S+)$")


def problems(output: str) -> list[str]:
    """The error lines of `output`, each once."""
    found = (m["line"].strip() for m in (ERROR.match(line) or FINDING.match(line)
                                         for line in output.splitlines()) if m)
    return list(dict.fromkeys(line[:300] for line in found))


def suspects(output: str, modules: dict[str, list[str]]) -> list[str]:
    """Distributions blamed by `output`: the one holding the innermost frame of a traceback
    (stdlib frames skipped; stepca's own frames blame no one), the module an import or attribute
    error names, and what tests/test_dependencies.py found missing."""
    blamed: list[str] = []
    innermost: str | None = None
    for line in output.splitlines():
        if frame := FRAME.match(line):
            path = frame["path"] or frame["short"]
            site = SITE_MODULE.search(path)
            if site:
                innermost = site["module"]
            elif "/lib/python3" not in path:
                innermost = None  # the repository's own code (tests)
        elif error := ERROR.match(line):
            named = NAMED.search(error["msg"])
            module = named and (named["module"] or named["owner"]).split(".")[0]
            for name in filter(None, [innermost, module]):
                blamed += [d for d in modules.get(name, []) if not d.startswith("stepca")]
            innermost = None
        elif finding := FINDING.match(line):
            blamed.append(finding["dist"])
    return sorted(set(blamed), key=str.lower)


def test_the_lowest_allowed_versions_pass_end_to_end(
        lowest: Venv, tmp_path: Path) -> None:
    run = subprocess.run(
        [str(lowest.python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=short",
         f"--basetemp={tmp_path / 'basetemp'}", *TESTS],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        # the OpenID provider's npm packages are in the checkout, not in the installed wheel
        env=lowest.env(STEPCA_TEST_OIDC_PROVIDER=str(OIDC_PROVIDER)))
    if run.returncode == 0:
        return
    installed = _installed(lowest)
    versions = {_normal(name): version for name, version in installed["versions"].items()}
    direct = ", ".join(f"{n}=={versions.get(_normal(n), '?')}" for n in _direct_requirements())
    blamed = ", ".join(f"{d}=={versions.get(_normal(d), '?')}"
                       for d in suspects(run.stdout + run.stderr, installed["modules"]))
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", run.stdout, re.MULTILINE)
    broken = "\n".join(f"  {test}: {why}" for test, why in TESTS.items()
                       if any(node.startswith(test) for node in failed))
    errors = "\n".join(f"  {line}" for line in problems(run.stdout + run.stderr))
    sections = re.search(r"^=+ (?:ERRORS|FAILURES) =+$", run.stdout, re.MULTILINE)
    report = run.stdout[sections.start() if sections else 0:]
    pytest.fail(f"On the lowest versions pyproject.toml allows, these failed:\n"
                f"{broken or run.stdout[-300:]}\n"
                f"with:\n{errors}\n"
                f"Suspected: {blamed or 'no dependency named by a traceback'}.\n"
                f"Installed: {direct}.\n\n{report[:12000]}\n{run.stderr[-3000:]}",
                pytrace=False)


def test_suspects_blame_the_innermost_dependency_frame_or_the_module_an_error_names() -> None:
    modules = {"gunicorn": ["gunicorn"], "click": ["click"], "cryptography": ["cryptography"],
               "stepca_cli": ["stepca"], "stepca": ["stepca"]}
    site = "/tmp/v/lib/python3.11/site-packages"
    gunicorn_refused_a_setting = f'''RuntimeError: step-ca exited 1:
Traceback (most recent call last):
  File "{site}/stepca/server.py", line 190, in load_config
  File "{site}/gunicorn/config.py", line 89, in set
  File "/usr/lib/python3.11/functools.py", line 10, in wrapper
AttributeError: No configuration setting for: control_socket_disable'''
    assert suspects(gunicorn_refused_a_setting, modules) == ["gunicorn"]
    # click called our command, which failed on a name cryptography lacks: blame cryptography
    step_failed = f'''Traceback (most recent call last):
  File "{site}/click/core.py", line 760, in invoke
  File "{site}/stepca_cli/commands/certificate_tools.py", line 553, in verify
AttributeError: module 'cryptography.x509.verification' has no attribute 'ExtensionPolicy\''''
    assert suspects(step_failed, modules) == ["cryptography"]
    # a test's own assertion blames no one
    assert suspects('  File "/work/tests/test_x.py", line 3, in test\nAssertionError: 1 != 2',
                    modules) == []
    # tests/test_dependencies.py names the distribution itself
    assert suspects("core/a.py:3: cryptography.x509.Nope: cryptography.x509 has no 'Nope' in "
                    "cryptography==44.0.0", modules) == ["cryptography"]
