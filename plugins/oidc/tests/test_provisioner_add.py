"""`step ca provisioner add --type OIDC` with step's flags writes the entry the CA then runs:
the real step CLI in a subprocess, a real ca.json, and the CA built from it fetching the keys of a
real OpenID provider."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stepca.testing import TestCA, TestPKI
from stepca.testing.oidc import OpenIDProvider
from stepca.testing.process import run_step

pytestmark = pytest.mark.e2e


def _add(ca_json: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env["STEPPATH"] = str(ca_json.parent.parent / "step")
    return run_step("ca", "provisioner", "add", *args, "--ca-config", str(ca_json), env=env,
                    check=False)


def test_an_oidc_provisioner_is_written_with_steps_keys_and_runs(
        stepca_pki: TestPKI, tmp_path: Path) -> None:
    ca_json = stepca_pki.config(tmp_path)
    with OpenIDProvider() as provider:
        done = _add(ca_json, "Example", "--type", "oidc", "--client-id", provider.client_id,
                    "--client-secret", provider.client_secret,
                    "--configuration-endpoint", provider.discovery_url,
                    "--admin", "admin@example.com", "--admin", "admins",
                    "--domain", "example.com", "--group", "developers",
                    "--listen-address", "127.0.0.1:10000", "--tenant-id", "t-1",
                    "--scope", "openid", "--scope", "email", "--auth-param", "prompt=login",
                    "--x509-default-dur", "8h", "--x509-max-dur", "8h")
        assert done.returncode == 0, done.stderr
        added = json.loads(ca_json.read_text())["authority"]["provisioners"][-1]
        assert added == {
            "type": "OIDC", "name": "Example", "clientID": provider.client_id,
            "clientSecret": provider.client_secret,
            "configurationEndpoint": provider.discovery_url,
            "admins": ["admin@example.com", "admins"], "domains": ["example.com"],
            "groups": ["developers"], "listenAddress": "127.0.0.1:10000", "tenantID": "t-1",
            "scopes": ["openid", "email"], "authParams": ["prompt=login"],
            "claims": {"defaultTLSCertDuration": "8h", "maxTLSCertDuration": "8h"}}
        ca = TestCA(ca_json)
        keys = ca.authority.provisioners.by_name("Example").provider
        try:
            assert keys.wait_fetched(timeout=30)
            assert keys.ready, keys.discovery.reason or keys.keys and keys.keys.reason
            assert keys.issuer == provider.issuer
        finally:
            keys.stop()
            ca.close()


@pytest.mark.parametrize(("args", "reason"), [
    (("--configuration-endpoint", "https://idp.example"),
     "'step ca provisioner add --type OIDC' requires the '--client-id' flag"),
    (("--client-id", "c"),
     "'step ca provisioner add --type OIDC' requires the '--configuration-endpoint' flag"),
    (("--client-id", "c", "--configuration-endpoint", "https://idp.example",
      "--azure-tenant", "t"), "flag '--azure-tenant' is not used by provisioners of type OIDC"),
])
def test_refusals_change_nothing(stepca_pki: TestPKI, tmp_path: Path, args: tuple[str, ...],
                                 reason: str) -> None:
    ca_json = stepca_pki.config(tmp_path)
    before = ca_json.read_bytes()
    done = _add(ca_json, "x", "--type", "OIDC", *args)
    assert done.returncode == 1 and reason in done.stderr, done.stderr
    assert ca_json.read_bytes() == before


def test_the_help_lists_the_oidc_flags() -> None:
    shown = run_step("ca", "provisioner", "add", "--help", env=dict(os.environ)).stdout
    for flag in ("--client-id", "--client-secret", "--configuration-endpoint", "--admin",
                 "--domain", "--group", "--listen-address", "--tenant-id", "--scope",
                 "--auth-param"):
        assert flag in shown
