"""The built-in key store (softkms) and memory store against the plugin contracts: the core holds
itself to the rules it sets for third-party plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepca.plugins import Plugins
from stepca.testing.contracts import KeyStoreContract, StoreContract


class TestSoftKMSContract(KeyStoreContract):
    key_types = (("EC", "P-256", 0), ("EC", "P-384", 0), ("EC", "P-521", 0),
                 ("RSA", "", 2048), ("OKP", "Ed25519", 0))

    @pytest.fixture
    def key_store(self, tmp_path: Path) -> Any:
        cls = Plugins.load(load_entrypoints=False).key_stores()["softkms"]
        return cls.from_config({}, base_dir=tmp_path)

    @pytest.fixture
    def new_key_ref(self, tmp_path: Path) -> Callable[[str], str]:
        # relative refs resolve against base_dir, as ca.json's "key" does against STEPPATH
        return lambda name: f"secrets/{name}_key"


def test_softkms_key_files_are_private(tmp_path: Path) -> None:
    store = Plugins.load(load_entrypoints=False).key_stores()["softkms"].from_config(
        {}, base_dir=tmp_path)
    store.create_signer("secrets/k", password=b"pw")
    path = tmp_path / "secrets" / "k"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


class TestMemoryStoreContract(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        plugins = Plugins.load(load_entrypoints=False)
        cls = plugins.certificate_stores()["memory"]
        assert plugins.revocation_stores()["memory"] is cls
        store = cls.from_config({"type": "memory"}, steppath=tmp_path)
        yield store
        store.close()
