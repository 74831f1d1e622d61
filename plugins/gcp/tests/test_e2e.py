"""Through the real ``step-ca`` and ``step``: ``step ca certificate --issuer <gcp>`` on an
"instance" whose metadata server is the emulator on 127.0.0.1 (``GCE_METADATA_HOST``), the CA
fetching the emulator's JWKS through ``jwksURL``; each ``step`` is checked to be given only
loopback metadata addresses."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509

from stepca.testing.cloud import GcpMetadataEmulator, SigningKey
from stepca.testing.http import RunningCA, running_ca
from stepca.testing.process import run_step, wait_for
from stepca.x509util import ProvisionerExtension

pytestmark = pytest.mark.e2e


@pytest.fixture
def gcp_ca(tmp_path: Path, google: Any,
           assert_loopback_metadata: Any) -> Iterator[tuple[RunningCA, dict[str, str]]]:
    provisioner = {"type": "GCP", "name": "Google Cloud", "jwksURL": google.jwks_url,
                   "projectIDs": ["stepca-test"], "instanceAge": "1h"}
    with running_ca(tmp_path, ca_json={"provisioners": [provisioner]}) as ca:
        env = _client_env(ca, google, tmp_path)
        assert_loopback_metadata(env)
        yield ca, env


def _client_env(ca: RunningCA, google: Any, tmp_path: Path) -> dict[str, str]:
    """A ``step`` on the emulated instance, its metadata server the emulator."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STEP", "GCE_"))}
    return {**base, "STEPPATH": str(tmp_path / "step"), "GCE_METADATA_HOST": google.host,
            "GCE_METADATA_IP": google.host, "GCE_METADATA_MTLS_MODE": "none",
            "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}


def _certificate(env: dict[str, str], cwd: Path, name: str, *extra: str,
                 check: bool = True) -> Any:
    """``step ca certificate`` once the CA's worker has Google's keys: its first fetch runs
    in the background, and until then the CA refuses with that reason and spends nothing."""
    args = ("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--issuer", "Google Cloud",
            *extra)
    outcome: list[Any] = []

    def attempt() -> bool:
        outcome[:] = [run_step(*args, env=env, cwd=cwd, check=False)]
        return "keys are not available yet" not in outcome[0].stderr

    wait_for(attempt, "the CA to have Google's keys", timeout=30)
    done = outcome[0]
    if check and done.returncode != 0:
        raise AssertionError(f"step {' '.join(args)}: {done.stderr}")
    return done


def test_step_ca_certificate_on_a_gcp_instance(gcp_ca: Any, google: Any,
                                               tmp_path: Path) -> None:
    ca, env = gcp_ca
    _certificate(env, tmp_path, "foo.internal")
    asked = [r.query for r in google.requests if r.path.endswith("/identity")]
    assert asked[-1:] == [{
        # escaped as smallstep's step escapes it (Go's url.URL)
        "audience": f"https://127.0.0.1:{ca.port}/1.0/sign#gcp/Google%20Cloud",
        "format": "full"}]
    certificate = x509.load_pem_x509_certificate((tmp_path / "foo.internal.crt").read_bytes())
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # given no --san, step asks for the instance's internal DNS names and the subject
    assert sans.get_values_for_type(x509.DNSName) == [*_dns_names(google), "foo.internal"]
    extension = ProvisionerExtension.from_certificate(certificate)
    assert extension is not None and extension.key_values[1] == google.instance.instance_id

    # trust on first use: the instance has had its certificate; it renews from now on
    again = _certificate(env, tmp_path, "bar.internal", check=False)
    assert again.returncode == 1 and "already used" in again.stderr
    assert not (tmp_path / "bar.internal.crt").exists()
    run_step("ca", "renew", "foo.internal.crt", "foo.internal.key", "--force", env=env,
             cwd=tmp_path)
    renewed = x509.load_pem_x509_certificate((tmp_path / "foo.internal.crt").read_bytes())
    assert renewed.serial_number != certificate.serial_number


def _dns_names(google: Any) -> list[str]:
    instance = google.instance
    return [f"{instance.instance_name}.c.{instance.project_id}.internal",
            f"{instance.instance_name}.{instance.zone}.c.{instance.project_id}.internal"]


def test_given_names_are_asked_for_as_given(gcp_ca: Any, tmp_path: Path) -> None:
    _ca, env = gcp_ca
    _certificate(env, tmp_path, "foo.internal", "--san", "foo.internal", "--san", "10.1.2.3")
    certificate = x509.load_pem_x509_certificate((tmp_path / "foo.internal.crt").read_bytes())
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["foo.internal"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]


def test_disable_custom_sans_limits_the_names(tmp_path: Path, google: Any,
                                              assert_loopback_metadata: Any) -> None:
    provisioner = {"type": "GCP", "name": "Google Cloud", "jwksURL": google.jwks_url,
                   "disableCustomSANs": True, "disableTrustOnFirstUse": True}
    with running_ca(tmp_path / "ca", ca_json={"provisioners": [provisioner]}) as ca:
        env = _client_env(ca, google, tmp_path)
        assert_loopback_metadata(env)
        dns_names = _dns_names(google)
        refused = _certificate(env, tmp_path, "foo.internal", "--san", "foo.internal",
                               check=False)
        assert refused.returncode == 1 and "foo.internal" in refused.stderr, refused.stderr
        assert not (tmp_path / "foo.internal.crt").exists()
        # given no --san, step asks for just the names Google vouches for
        name = google.instance.instance_name
        _certificate(env, tmp_path, name)
        certificate = x509.load_pem_x509_certificate((tmp_path / f"{name}.crt").read_bytes())
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert sans.value.get_values_for_type(x509.DNSName) == dns_names


def test_an_instance_of_another_project_is_refused(gcp_ca: Any, google: Any,
                                                   tmp_path: Path) -> None:
    _ca, env = gcp_ca
    google.instance = replace(google.instance, project_id="elsewhere")
    refused = _certificate(env, tmp_path, "foo.internal", check=False)
    assert refused.returncode == 1 and "project not allowed" in refused.stderr
    # and the instance's slot was not spent: from the right project it gets its certificate
    google.instance = replace(google.instance, project_id="stepca-test")
    _certificate(env, tmp_path, "foo.internal")


def test_refused_identities_spend_nothing(tmp_path: Path, google: Any,
                                          assert_loopback_metadata: Any) -> None:
    provisioner = {"type": "GCP", "name": "Google Cloud", "jwksURL": google.jwks_url,
                   "projectIDs": ["stepca-test"], "instanceAge": "1h",
                   "serviceAccounts": [google.instance.service_account_email]}
    with running_ca(tmp_path / "ca", ca_json={"provisioners": [provisioner]}) as ca:
        env = _client_env(ca, google, tmp_path)
        assert_loopback_metadata(env)
        genuine = google.instance
        refusals = [
            (replace(genuine, service_account_email="other@stepca-test.iam.gserviceaccount.com",
                     service_account_id="104270000000000000999"), None,
             "service account not allowed"),
            (replace(genuine, instance_creation_timestamp=int(time.time()) - 7200), None,
             "older than instanceAge"),
            (genuine, SigningKey("not Google"), "signature"),
        ]
        for instance, forger, reason in refusals:
            google.instance, google.forger = instance, forger
            refused = _certificate(env, tmp_path, "foo.internal", check=False)
            assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
            assert not (tmp_path / "foo.internal.crt").exists()
        # none of them burnt the instance's one certificate
        google.instance, google.forger = genuine, None
        _certificate(env, tmp_path, "foo.internal")


def test_a_metadata_server_that_is_down_is_one_line(gcp_ca: Any, tmp_path: Path,
                                                    assert_loopback_metadata: Any) -> None:
    _ca, env = gcp_ca
    gone = GcpMetadataEmulator().start()
    host = gone.host
    gone.stop()  # nothing listens on its port any more
    env = {**env, "GCE_METADATA_HOST": host, "GCE_METADATA_IP": host}
    assert_loopback_metadata(env)
    # google-auth retries with backoff: this one waits about 15 s
    done = run_step("ca", "certificate", "foo.internal", "foo.crt", "foo.key",
                    "--issuer", "Google Cloud", env=env, cwd=tmp_path, check=False)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    chosen, error = done.stderr.splitlines()  # the reason is one line, naming where it looked
    assert chosen.endswith("Provisioner: Google Cloud (GCP)")
    assert error.startswith("provisioner 'Google Cloud': cannot get the instance identity token")
    assert host in error
    assert not (tmp_path / "foo.crt").exists()
