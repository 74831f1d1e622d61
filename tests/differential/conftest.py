"""smallstep's step-ca 0.19 as the oracle: built once by ``scripts/reference-stepca`` (cached
outside the repository), started next to ours on the same PKI, theirs or ours."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stepca.testing import PASSWORD, TestPKI
from stepca.testing.reference import (Endpoint, ReferenceUnavailable, built_reference,
                                      clean_env, reference_pki, write_ca_json)

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def reference_bin() -> Path:
    """The folder holding smallstep's ``step-ca`` and ``refpki``."""
    try:
        return built_reference(REPOSITORY / "scripts" / "reference-stepca")
    except ReferenceUnavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("differential") / "password"
    path.write_bytes(PASSWORD)
    return path


@pytest.fixture(scope="session")
def their_pki(reference_bin: Path, password_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A PKI written by smallstep's own ``pki`` package, as their ``step ca init`` does."""
    try:
        return reference_pki(reference_bin, tmp_path_factory.mktemp("their-pki"), password_file)
    except RuntimeError as exc:
        pytest.fail(str(exc))


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
    theirs = write_ca_json(work / "theirs", pki.ca_json, their_port,
                           {"type": "badgerv2", "dataSource": str(work / "theirs" / "db")})
    ours = write_ca_json(work / "ours", pki.ca_json, our_port,
                         {"type": "sqlite", "dataSource": str(work / "ours" / "stepca.db")},
                         server={"workers": 1})
    root = pki.steppath / "certs" / "root_ca.crt"
    with StepCAProcess(theirs, password_file=password_file, root=root, port=their_port,
                       env=clean_env(), bin_dir=reference_bin), \
         StepCAProcess(ours, password_file=password_file, root=root, port=our_port,
                       env=clean_env()):
        yield Pair(Endpoint("smallstep", their_port, pki), Endpoint("stepca", our_port, pki))
