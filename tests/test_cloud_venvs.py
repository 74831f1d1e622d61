"""Each cloud is its own distribution: a fresh virtual environment with `stepca`,
`stepca-store-sqlite` and one cloud plugin only (no JWK either) adds that cloud's provisioner
with its own `step ca provisioner add`, serves it with its own `step-ca`, and an "instance"
(its metadata service an emulator on 127.0.0.1) gets a certificate with its own `step`.
`step plugins` there lists no other cloud, and no other cloud's SDK is installed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509

from stepca.testing.cloud import (
    AwsImdsEmulator,
    AzureImdsEmulator,
    GcpInstance,
    GcpMetadataEmulator,
    MetadataEmulator,
)
from stepca.testing.process import StepCAProcess, Venv, free_port, run_step, wait_for
from stepca.x509util import ProvisionerExtension

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
CLOUD_PREFIXES = ("AWS_", "GCE_", "GOOGLE_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_")


@dataclass(frozen=True)
class Cloud:
    plugin: str  # the folder under plugins/
    type: str
    sdk: str  # the module its client imports
    add_flags: Callable[[Any, Path], tuple[str, ...]]
    """The flags of `step ca provisioner add`, given the emulator and a folder for files."""
    emulator: Callable[[], MetadataEmulator]
    ca_json: Callable[[Any, Path], dict[str, Any]]
    """Keys of our own the test CA needs to trust the emulator (where it fetches keys)."""
    client_env: Callable[[Any], dict[str, str]]
    """The SDK's own settings pointing it at the emulator; every value must be loopback."""


def _gcp_env(emulator: Any) -> dict[str, str]:
    return {"GCE_METADATA_HOST": emulator.host, "GCE_METADATA_IP": emulator.host,
            "GCE_METADATA_MTLS_MODE": "none"}


def _aws_flags(emulator: Any, tmp: Path) -> tuple[str, ...]:
    roots = tmp / "iid-roots.pem"  # the emulator's signing certificate stands in for AWS's
    roots.write_bytes(emulator.certificate_pem)
    return ("--aws-account", "123456789012", "--instance-age", "1h", "--iid-roots", str(roots))


def _aws_env(emulator: Any) -> dict[str, str]:
    # no AWS configuration or credentials file of this machine may name another endpoint
    return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.url,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}


def _azure_flags(emulator: Any, _tmp: Path) -> tuple[str, ...]:
    return ("--azure-tenant", emulator.instance.tenant_id, "--azure-resource-group",
            emulator.instance.resource_group)


CLOUDS = {
    "azure": Cloud(
        plugin="azure", type="Azure", sdk="azure.identity", add_flags=_azure_flags,
        emulator=AzureImdsEmulator,
        ca_json=lambda emulator, _tmp: {"openidConfigurationURL": emulator.discovery_url()},
        client_env=lambda emulator: {"AZURE_POD_IDENTITY_AUTHORITY_HOST": emulator.url}),
    "aws": Cloud(
        plugin="aws", type="AWS", sdk="botocore",
        add_flags=_aws_flags, emulator=AwsImdsEmulator, ca_json=lambda _emulator, _tmp: {},
        client_env=_aws_env),
    "gcp": Cloud(
        plugin="gcp", type="GCP", sdk="google.auth",
        add_flags=lambda _emulator, _tmp: ("--gcp-project", "stepca-test", "--instance-age",
                                           "1h"),
        emulator=lambda: GcpMetadataEmulator(GcpInstance(project_id="stepca-test")),
        ca_json=lambda emulator, _tmp: {"jwksURL": emulator.jwks_url},
        client_env=_gcp_env),
}
OTHER_SDKS = {cloud.sdk for cloud in CLOUDS.values()} | {"boto3", "botocore", "azure.identity",
                                                           "google.auth"}


def _assert_loopback(env: dict[str, str]) -> None:
    for name, value in env.items():
        if value.isdigit() or value in ("none", "true", "false") or value.startswith("/"):
            continue
        host = urlsplit(value if "://" in value else f"http://{value}").hostname
        assert host == "127.0.0.1", f"{name}={value} is not loopback"


@pytest.fixture(params=sorted(CLOUDS), scope="module")
def cloud(request: pytest.FixtureRequest) -> Cloud:
    return CLOUDS[request.param]


@pytest.fixture(scope="module")
def venv(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    env = Venv.create(tmp_path_factory.mktemp(f"only-{cloud.plugin}") / "venv")
    env.uv_install(str(REPO), str(REPO / "plugins" / "store_sqlite"),
                   str(REPO / "plugins" / cloud.plugin))
    return env


def test_a_venv_with_one_cloud_issues_through_it(cloud: Cloud, venv: Venv,
                                                 tmp_path: Path) -> None:
    listed = run_step("plugins", env=venv.env(), bin_dir=venv.bin).stdout
    types = set(re.findall(r"^\s+provisioner (\S+)$", listed, flags=re.MULTILINE))
    assert types == {cloud.type}, listed
    for sdk in OTHER_SDKS - {cloud.sdk}:
        absent = subprocess.run([str(venv.python), "-c", f"import {sdk}"], env=venv.env(),
                                capture_output=True, text=True)
        assert absent.returncode != 0, f"{sdk} is installed with only {cloud.plugin}"

    emulator = cloud.emulator().start()
    try:
        _issue_and_renew(cloud, venv, emulator, tmp_path)
    finally:
        emulator.stop()


def _issue_and_renew(cloud: Cloud, venv: Venv, emulator: Any, tmp: Path) -> None:
    port = free_port()
    password = tmp / "password.txt"
    password.write_text("only-one-cloud\n")
    ca_env = venv.env(STEPPATH=str(tmp / "ca"))
    init = run_step("ca", "init", "--name", "One Cloud", "--provisioner", "admin",
                    "--dns", "127.0.0.1", "--address", f"127.0.0.1:{port}",
                    "--password-file", str(password), "--provisioner-password-file",
                    str(password), env=ca_env, bin_dir=venv.bin, cwd=tmp)
    fingerprint = re.search(r"Root fingerprint: ([0-9a-f]{64})", init.stderr)
    assert fingerprint, init.stderr
    ca_json = tmp / "ca" / "config" / "ca.json"
    # this venv has no JWK plugin: the operator drops the JWK provisioner `step ca init` made
    config = json.loads(ca_json.read_text())
    config["authority"]["provisioners"] = []
    ca_json.write_text(json.dumps(config, indent="\t"))
    run_step("ca", "provisioner", "add", "cloud", "--type", cloud.type,
             *cloud.add_flags(emulator, tmp),
             env=ca_env, bin_dir=venv.bin, cwd=tmp)
    config = json.loads(ca_json.read_text())
    (entry,) = config["authority"]["provisioners"]
    assert entry["type"] == cloud.type and entry["name"] == "cloud"
    entry.update(cloud.ca_json(emulator, tmp))
    ca_json.write_text(json.dumps(config, indent="\t"))

    # nothing of the test run's own cloud settings: only what points the SDK at the emulator
    client_env = {k: v for k, v in venv.env().items() if not k.startswith(CLOUD_PREFIXES)}
    client_env |= {"STEPPATH": str(tmp / "client"), **cloud.client_env(emulator)}
    _assert_loopback(cloud.client_env(emulator))
    with StepCAProcess(ca_json, password_file=password, root=tmp / "ca" / "certs" /
                       "root_ca.crt", port=port, env=ca_env, bin_dir=venv.bin):
        run_step("ca", "bootstrap", "--ca-url", f"https://127.0.0.1:{port}", "--fingerprint",
                 fingerprint.group(1), env=client_env, bin_dir=venv.bin, cwd=tmp)
        args = ("ca", "certificate", "web.internal", "web.crt", "web.key", "--issuer", "cloud")
        outcome: list[subprocess.CompletedProcess[str]] = []

        def attempt() -> bool:  # the CA's first key fetch runs in the background
            outcome[:] = [run_step(*args, env=client_env, bin_dir=venv.bin, cwd=tmp,
                                   check=False)]
            return "not available yet" not in outcome[0].stderr

        wait_for(attempt, "the CA to have the cloud's keys", timeout=30)
        assert outcome[0].returncode == 0, outcome[0].stderr
        issued = x509.load_pem_x509_certificate((tmp / "web.crt").read_bytes())
        extension = ProvisionerExtension.from_certificate(issued)
        assert extension is not None and extension.name == "cloud"
        run_step("ca", "renew", "web.crt", "web.key", "--force", env=client_env,
                 bin_dir=venv.bin, cwd=tmp)
        renewed = x509.load_pem_x509_certificate((tmp / "web.crt").read_bytes())
        assert renewed.serial_number != issued.serial_number
