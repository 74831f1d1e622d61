"""Azure on 127.0.0.1 for the Azure plugin's tests: the shared instance metadata emulator
(``stepca.testing.cloud.AzureImdsEmulator``), which also stands in for the tenant's OpenID
discovery document and keys. azure-identity (and the client's ``azEnvironment`` request) is
pointed at it with ``AZURE_POD_IDENTITY_AUTHORITY_HOST``; every other managed identity setting
(App Service's ``IDENTITY_ENDPOINT``, ``MSI_ENDPOINT``, ...) is removed, so no test can reach a
real metadata address."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import pytest

from stepca.testing.cloud import AzureImdsEmulator, AzureInstance

AUTHORITY_SETTING = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
# what else could send azure-identity's managed identity credential elsewhere
OTHER_IDENTITY_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")

INSTANCE = AzureInstance(resource_group="stepca-rg", vm_name="vm-1")


def _assert_loopback_identity(env: Mapping[str, str]) -> None:
    """The guard: the authority is set and names 127.0.0.1, and no other setting could send
    azure-identity to another managed identity endpoint."""
    assert AUTHORITY_SETTING in env, f"{AUTHORITY_SETTING} is not set: the SDK would use IMDS"
    host = urlsplit(env[AUTHORITY_SETTING]).hostname
    assert host == "127.0.0.1", f"{AUTHORITY_SETTING}={env[AUTHORITY_SETTING]} is not loopback"
    others = [k for k in env if k.startswith(OTHER_IDENTITY_PREFIXES) and k != AUTHORITY_SETTING]
    assert not others, f"managed identity settings would leak: {others}"


def identity_env(base: Mapping[str, str], emulator: AzureImdsEmulator) -> dict[str, str]:
    """``base`` without any managed identity setting, pointed at ``emulator``."""
    env = {k: v for k, v in base.items() if not k.startswith(OTHER_IDENTITY_PREFIXES)}
    env |= {AUTHORITY_SETTING: emulator.url, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    _assert_loopback_identity(env)
    return env


_EMULATOR = AzureImdsEmulator(INSTANCE).start()
_SIGNER = _EMULATOR.signer
# azure-identity reads its settings when a credential is made: the in-process clients too
for _name in [k for k in os.environ if k.startswith(OTHER_IDENTITY_PREFIXES)]:
    del os.environ[_name]
os.environ[AUTHORITY_SETTING] = _EMULATOR.url
_assert_loopback_identity(os.environ)


@pytest.fixture
def assert_loopback_identity() -> Callable[[Mapping[str, str]], None]:
    """The guard, for an environment a client process is given."""
    return _assert_loopback_identity


@pytest.fixture
def client_env() -> Callable[[Mapping[str, str], AzureImdsEmulator], dict[str, str]]:
    """``identity_env``, for a client process's environment."""
    return identity_env


@pytest.fixture(scope="session")
def azure_server() -> Iterator[AzureImdsEmulator]:
    yield _EMULATOR
    _EMULATOR.stop()


def _reset(emulator: AzureImdsEmulator) -> None:
    emulator.instance = INSTANCE
    emulator.signer, emulator.published = _SIGNER, [_SIGNER]
    emulator.forger = None
    emulator.issued_at = None
    emulator.identity_status = 200
    emulator.keys_delay = 0.0
    emulator.requests.clear()


@pytest.fixture
def azure(azure_server: AzureImdsEmulator) -> Iterator[AzureImdsEmulator]:
    _reset(azure_server)
    yield azure_server
    _reset(azure_server)
