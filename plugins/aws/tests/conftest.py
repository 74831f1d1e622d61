"""AWS on 127.0.0.1 for the AWS plugin's tests: the shared EC2 metadata service emulator
(``stepca.testing.cloud.AwsImdsEmulator``), whose signing certificate the test CAs trust through
``iidRoots``. botocore is pointed at it with ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, and every
test (and every ``step`` the end-to-end tests run) is given AWS settings that name only the
emulator and no real AWS configuration or credentials file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from stepca.testing.cloud import AwsImdsEmulator, AwsInstance

INSTANCE = AwsInstance(account_id="123456789012", instance_id="i-0123456789abcdef0",
                       private_ip="10.0.1.17", region="us-east-1")
DNS_NAME = "ip-10-0-1-17.us-east-1.compute.internal"


def _assert_loopback_metadata(env: Mapping[str, str]) -> None:
    """The guard: botocore's endpoint setting names 127.0.0.1, metadata is not switched to IPv6,
    and AWS's config and credentials files are not the user's."""
    endpoint = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    assert endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT is not set: botocore would use the real one"
    assert urlsplit(endpoint).hostname == "127.0.0.1", f"{endpoint} is not loopback"
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" not in env
    assert env.get("AWS_EC2_METADATA_DISABLED", "false").lower() != "true"
    home = str(Path.home() / ".aws")
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert env.get(name) and not env[name].startswith(home), f"{name} may be the user's"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ROLE_ARN"} & set(env)


def aws_env(base: Mapping[str, str], emulator: AwsImdsEmulator, folder: Path) -> dict[str, str]:
    """``base`` without its AWS settings, plus the emulator's endpoint and AWS files that do not
    exist (botocore then reads no configuration and no credentials)."""
    env = {k: v for k, v in base.items() if not k.startswith("AWS_")}
    env |= {"AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.url,
            "AWS_CONFIG_FILE": str(folder / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "aws-credentials")}
    _assert_loopback_metadata(env)
    return env


_EMULATOR = AwsImdsEmulator(INSTANCE).start()
_SIGNER = _EMULATOR.signer


@pytest.fixture
def assert_loopback_metadata() -> Callable[[Mapping[str, str]], None]:
    """The guard, for an environment a client process is given."""
    return _assert_loopback_metadata


@pytest.fixture(scope="session")
def imds_server() -> Iterator[AwsImdsEmulator]:
    yield _EMULATOR
    _EMULATOR.stop()


def _reset(emulator: AwsImdsEmulator) -> None:
    # launched ten minutes ago (within an instanceAge of 1h), signing with its own key
    launched = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    emulator.instance = replace(INSTANCE, pending_time=launched)
    emulator.signer, emulator.published = _SIGNER, [_SIGNER]
    emulator.forger = None
    emulator.imds_versions = ("v2", "v1")
    emulator.requests.clear()


@pytest.fixture
def imds(imds_server: AwsImdsEmulator, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsImdsEmulator]:
    """The emulator, reset; this process's AWS settings name it (botocore reads them when a
    session is made, so an in-process client uses it too)."""
    _reset(imds_server)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in aws_env({}, imds_server, tmp_path).items():
        monkeypatch.setenv(name, value)
    yield imds_server
    _reset(imds_server)


@pytest.fixture
def iid_roots(imds: AwsImdsEmulator, tmp_path: Path) -> Path:
    """An ``iidRoots`` bundle with the emulator's certificate: what a test CA trusts."""
    path = tmp_path / "iid-roots.pem"
    path.write_bytes(imds.certificate_pem)
    return path


def _wrapper_token(document: bytes, signature: bytes, *, audience: str | list[str],
                  subject: str = DNS_NAME, key: bytes | None = None, alg: str = "HS256",
                  now: datetime | None = None, **claims: Any) -> str:
    """step's AWS token, made here independently of the plugin's client: HS256 keyed with the
    signature (or ``key``); each keyword in ``claims`` replaces a claim, None removes it."""
    issued = int((now or datetime.now(UTC)).timestamp())
    body: dict[str, Any] = {
        "iss": "ec2.amazonaws.com", "sub": subject,
        "aud": audience if isinstance(audience, list) else [audience],
        "iat": issued, "nbf": issued, "exp": issued + 300,
        "jti": hashlib.sha256(document).hexdigest(),
        "amazon": {"document": base64.b64encode(document).decode(),
                   "signature": base64.b64encode(signature).decode()}}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (f"{b64url(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}."
                     f"{b64url(json.dumps(body).encode())}")
    mac = hmac.new(key if key is not None else signature, signing_input.encode(),
                   hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


@pytest.fixture
def wrapper_token() -> Callable[..., str]:
    """``wrapper_token(document, signature, *, audience, subject=..., key=None, alg="HS256",
    now=None, **claims)``: step's AWS token, made independently of the plugin's client."""
    return _wrapper_token
