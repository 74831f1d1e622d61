"""Through the real ``step-ca`` and ``step``: ``step ca certificate --issuer Azure`` on a "VM"
whose instance metadata service is the emulator on 127.0.0.1
(``AZURE_POD_IDENTITY_AUTHORITY_HOST``), the CA discovering the emulator's tenant through
``openidConfigurationURL``; each ``step`` is checked to be given only the loopback authority and
no other managed identity setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from stepca.testing.cloud import SigningKey
from stepca.testing.http import RunningCA, running_ca
from stepca.testing.process import run_step, wait_for
from stepca.x509util import ProvisionerExtension

pytestmark = pytest.mark.e2e

NOT_READY = "the Azure tenant's keys are not available yet"


@pytest.fixture
def start_ca(tmp_path: Path, azure: Any, client_env: Any) -> Iterator[Any]:
    started: list[Any] = []

    def start(**options: Any) -> tuple[RunningCA, dict[str, str]]:
        provisioner = {"type": "Azure", "name": "Azure", "tenantID": azure.instance.tenant_id,
                       "openidConfigurationURL": azure.discovery_url(), **options}
        context = running_ca(tmp_path, ca_json={"provisioners": [provisioner]})
        ca = context.__enter__()
        started.append(context)
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        env = {**client_env(base, azure), "STEPPATH": str(tmp_path / "step"),
               "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}
        return ca, env

    yield start
    for context in started:
        context.__exit__(None, None, None)


def _certificate(env: dict[str, str], cwd: Path, name: str, *, check: bool = True,
                 ready: str = NOT_READY) -> Any:
    """``step ca certificate`` once the CA's worker has the tenant's keys: its first fetch runs
    in the background, and until then the CA refuses with that reason and spends nothing."""
    args = ("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--issuer", "Azure")
    outcome: list[Any] = []

    def attempt() -> bool:
        outcome[:] = [run_step(*args, env=env, cwd=cwd, check=False)]
        return ready not in outcome[0].stderr

    wait_for(attempt, "the CA to have the tenant's keys", timeout=30)
    done = outcome[0]
    if check and done.returncode != 0:
        raise AssertionError(f"step {' '.join(args)}: {done.stderr}")
    return done


def _refused(env: dict[str, str], cwd: Path, name: str, reason: str) -> None:
    done = _certificate(env, cwd, name, check=False)
    assert done.returncode == 1 and reason in done.stderr, done.stderr
    assert not (cwd / f"{name}.crt").exists()


def _sans(path: Path) -> list[str]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in names]


def test_step_ca_certificate_on_an_azure_vm(start_ca: Any, azure: Any, tmp_path: Path) -> None:
    _ca, env = start_ca(resourceGroups=["stepca-rg"])
    tenant = azure.instance.tenant_id
    # refusals first: none of them spends the VM's one certificate
    azure.forger = SigningKey("not Microsoft")
    _refused(env, tmp_path, "vm-1.internal", "invalid token signature")
    azure.forger = None
    azure.instance = replace(azure.instance, resource_group="other-rg")
    _refused(env, tmp_path, "vm-1.internal", "resource group not allowed")
    azure.instance = replace(azure.instance, resource_group="stepca-rg",
                             tenant_id="6d3f9b53-0000-4000-8000-000000000000")
    _refused(env, tmp_path, "vm-1.internal", "no provisioner")
    azure.instance = replace(azure.instance, tenant_id=tenant)

    _certificate(env, tmp_path, "vm-1.internal")
    asked = [r.query for r in azure.requests if r.path == "/metadata/identity/oauth2/token"]
    assert asked[-1]["resource"] == "https://management.azure.com/"
    crt = tmp_path / "vm-1.internal.crt"
    # given no --san, step asks for the VM's name and the subject; step-ca takes the CSR's
    assert _sans(crt) == ["vm-1", "vm-1.internal"]
    extension = ProvisionerExtension.from_certificate(
        x509.load_pem_x509_certificate(crt.read_bytes()))
    assert extension is not None
    assert (extension.type_name, extension.name, extension.credential_id) == (
        "Azure", "Azure", azure.instance.tenant_id)

    # trust on first use: the VM has had its certificate; it renews from now on
    _refused(env, tmp_path, "other.internal", "already used")
    serial = x509.load_pem_x509_certificate(crt.read_bytes()).serial_number
    run_step("ca", "renew", crt.name, "vm-1.internal.key", "--force", env=env, cwd=tmp_path)
    assert x509.load_pem_x509_certificate(crt.read_bytes()).serial_number != serial


def test_the_audience_and_the_names_azure_vouches_for(start_ca: Any, azure: Any,
                                                      tmp_path: Path) -> None:
    _ca, env = start_ca(audience="https://management.usgovcloudapi.net/",
                        disableCustomSANs=True)
    # a public cloud VM asks for the public cloud's resource: not this provisioner's audience
    _refused(env, tmp_path, "vm-1", "wrong audience")
    azure.instance = replace(azure.instance, environment="AzureUSGovernmentCloud")
    # disableCustomSANs: only the VM's name
    done = _certificate(env, tmp_path, "vm-1.internal", check=False)
    assert done.returncode == 1 and "common name" in done.stderr, done.stderr
    _certificate(env, tmp_path, "vm-1")
    assert _sans(tmp_path / "vm-1.crt") == ["vm-1"]


def test_a_tenant_that_cannot_be_discovered_leaves_the_ca_up(start_ca: Any, azure: Any,
                                                             tmp_path: Path) -> None:
    down = "http://127.0.0.1:9/tenant/.well-known/openid-configuration"
    ca, env = start_ca(openidConfigurationURL=down)
    run_step("ca", "health", env=env)
    # once the first fetch has failed, the refusal says why
    done = _certificate(env, tmp_path, "vm-1.internal", check=False, ready="not fetched yet")
    assert done.returncode == 1 and f"{NOT_READY}: provisioner 'Azure': cannot fetch {down}: " \
        in done.stderr, done.stderr
    assert f"provisioner 'Azure': cannot fetch {down}" in ca.process.log_path.read_text()
