"""smallstep's step-ca 0.19 as the oracle: built once by ``scripts/reference-stepca`` (cached
outside the repository), started next to ours on the same PKI, theirs or ours."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stepca.testing import PASSWORD, TestPKI
from stepca.testing.reference import Endpoint, load_pki

REPOSITORY = Path(__file__).resolve().parents[2]
UNAVAILABLE = 3  # scripts/reference-stepca: the Debian packages are missing


@pytest.fixture(scope="session")
def reference_bin() -> Path:
    """The folder holding smallstep's ``step-ca`` and ``refpki``."""
    built = subprocess.run([str(REPOSITORY / "scripts" / "reference-stepca")],
                           check=False, capture_output=True, text=True, timeout=900)
    if built.returncode == UNAVAILABLE:
        pytest.skip(built.stderr.strip())
    if built.returncode != 0:
        pytest.fail(f"scripts/reference-stepca failed:\n{built.stderr}")
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("differential") / "password"
    path.write_bytes(PASSWORD)
    return path


@pytest.fixture(scope="session")
def their_pki(reference_bin: Path, password_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A PKI written by smallstep's own ``pki`` package, as their ``step ca init`` does."""
    steppath = tmp_path_factory.mktemp("their-pki")
    made = subprocess.run([str(reference_bin / "refpki"), "-name", "Test", "-address",
                           "127.0.0.1:9000", "-dns", "localhost,127.0.0.1", "-provisioner",
                           "admin", "-password-file", str(password_file)],
                          env={**_clean_env(), "STEPPATH": str(steppath)},
                          check=False, capture_output=True, text=True, timeout=120)
    fingerprints = re.findall(r"^[0-9a-f]{64}$", made.stdout, re.MULTILINE)
    if made.returncode != 0 or not fingerprints:
        pytest.fail(f"refpki failed:\n{made.stdout}\n{made.stderr}")
    return load_pki(steppath, fingerprints[-1])


@pytest.fixture(scope="session")
def our_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A PKI written by our ``step ca init`` code."""
    from stepca.testing import make_pki

    return make_pki(tmp_path_factory.mktemp("our-pki") / "pki", name="Test")


@dataclass(frozen=True)
class Pair:
    """smallstep's step-ca and ours, serving the same PKI."""

    theirs: Endpoint
    ours: Endpoint


@pytest.fixture(scope="module", params=["their-pki", "our-pki"])
def pair(request: pytest.FixtureRequest, reference_bin: Path, password_file: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    from stepca.testing.process import StepCAProcess, free_port

    pki: TestPKI = request.getfixturevalue(request.param.replace("-", "_"))
    work = tmp_path_factory.mktemp(f"pair-{request.param}")
    their_port, our_port = free_port(), free_port()
    theirs = _ca_json(work / "theirs", pki.ca_json, their_port,
                      {"type": "badgerv2", "dataSource": str(work / "theirs" / "db")})
    ours = _ca_json(work / "ours", pki.ca_json, our_port,
                    {"type": "sqlite", "dataSource": str(work / "ours" / "stepca.db")},
                    server={"workers": 1})
    root = pki.steppath / "certs" / "root_ca.crt"
    with StepCAProcess(theirs, password_file=password_file, root=root, port=their_port,
                       env=_clean_env(), bin_dir=reference_bin), \
         StepCAProcess(ours, password_file=password_file, root=root, port=our_port,
                       env=_clean_env()):
        yield Pair(Endpoint("smallstep", their_port, pki), Endpoint("stepca", our_port, pki))


def _ca_json(folder: Path, ca_json: dict[str, Any], port: int, db: dict[str, str],
             **extra: Any) -> Path:
    config = {key: value for key, value in ca_json.items() if key != "server"}
    config.update(address=f"127.0.0.1:{port}", db=db, **extra)
    path = folder / "ca.json"
    folder.mkdir(parents=True)
    path.write_text(json.dumps(config, indent="\t"))
    return path


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("STEP")}
