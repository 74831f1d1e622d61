"""pytest fixtures for stepca plugins, registered through the ``pytest11`` entry point.

Kept import-light: stepca itself is imported inside the fixtures, so coverage of a plugin under
test starts before any of its modules load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def stepca_pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A PKI made once per test session (root, intermediate, one JWK provisioner ``admin``)."""
    from stepca.testing import make_pki

    return make_pki(tmp_path_factory.mktemp("stepca-pki"))


@pytest.fixture
def stepca_ca(stepca_pki: Any, tmp_path: Path) -> Iterator[Any]:
    """An in-process CA over ``stepca_pki`` with a fresh SQLite database."""
    from stepca.testing import TestCA

    ca = TestCA(stepca_pki.config(tmp_path))
    yield ca
    ca.close()
