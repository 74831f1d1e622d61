"""Google on 127.0.0.1 for the GCP plugin's tests: the shared Compute Engine metadata emulator
(``stepca.testing.cloud.GcpMetadataEmulator``), which also serves Google's JWKS. google-auth is
pointed at it with ``GCE_METADATA_HOST`` (and ``GCE_METADATA_IP``), set here before anything
imports google-auth (which reads them once), so no test can reach a real metadata address."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from stepca.testing.cloud import GcpInstance, GcpMetadataEmulator

# google-auth's metadata settings: each must name the emulator, never a real metadata server
METADATA_SETTINGS = ("GCE_METADATA_HOST", "GCE_METADATA_IP")

INSTANCE = GcpInstance(
    project_id="stepca-test", project_number=424242, zone="europe-west1-b",
    instance_id="5580436311563912345", instance_name="web-1",
    service_account_email="web@stepca-test.iam.gserviceaccount.com",
    service_account_id="104270000000000000001")


def _assert_loopback_metadata(env: Mapping[str, str]) -> None:
    """The guard: every google-auth metadata setting is set, and names 127.0.0.1."""
    for name in METADATA_SETTINGS:
        assert name in env, f"{name} is not set: google-auth would use the real one"
        value = env[name]
        host = urlsplit(value if "://" in value else f"http://{value}").hostname
        assert host == "127.0.0.1", f"{name}={value} is not loopback"


_EMULATOR = GcpMetadataEmulator(INSTANCE).start()
_SIGNER = _EMULATOR.signer
assert "google.auth" not in sys.modules, "google-auth was imported before its settings"
# before google-auth is imported anywhere: it reads these once, at import
os.environ["GCE_METADATA_HOST"] = _EMULATOR.host
os.environ["GCE_METADATA_IP"] = _EMULATOR.host
os.environ["GCE_METADATA_MTLS_MODE"] = "none"
_assert_loopback_metadata(os.environ)


@pytest.fixture
def assert_loopback_metadata() -> Callable[[Mapping[str, str]], None]:
    """The guard, for an environment a client process is given."""
    return _assert_loopback_metadata


@pytest.fixture(scope="session")
def google_server() -> Iterator[GcpMetadataEmulator]:
    yield _EMULATOR
    _EMULATOR.stop()


def _reset(emulator: GcpMetadataEmulator) -> None:
    # an instance made ten minutes ago (within an instanceAge of 1h), signing with its own key
    emulator.instance = replace(INSTANCE, instance_creation_timestamp=int(time.time()) - 600)
    emulator.signer, emulator.published = _SIGNER, [_SIGNER]
    emulator.forger = None
    emulator.issued_at = None
    emulator.identity_status = 200
    emulator.keys_delay = 0.0
    emulator.requests.clear()


@pytest.fixture
def google(google_server: GcpMetadataEmulator) -> Iterator[GcpMetadataEmulator]:
    _reset(google_server)
    yield google_server
    _reset(google_server)
