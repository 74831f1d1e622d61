"""Through the real ``step-ca`` and ``step``: ``step ca certificate --issuer <aws>`` on an
"instance" whose metadata service is the emulator on 127.0.0.1
(``AWS_EC2_METADATA_SERVICE_ENDPOINT``), the CA trusting the emulator's certificate through
``iidRoots``; each ``step`` is checked to be given only loopback metadata settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from stepca.testing.cloud import AwsImdsEmulator, AwsInstance, SigningKey
from stepca.testing.http import RunningCA, running_ca
from stepca.testing.process import run_step
from stepca.x509util import ProvisionerExtension

pytestmark = pytest.mark.e2e

NAME = "Amazon Web Services"
DNS_NAME = "ip-10-0-1-17.us-east-1.compute.internal"
Started = tuple[RunningCA, dict[str, str]]


@pytest.fixture
def aws_ca(tmp_path: Path, imds: AwsImdsEmulator, iid_roots: Path,
           assert_loopback_metadata: Callable[..., None]) -> Callable[..., Any]:
    """``with aws_ca(**options) as (ca, env)``: a step-ca with one AWS provisioner, and the
    environment of a ``step`` on the emulated instance."""
    @contextmanager
    def start(**options: Any) -> Iterator[Started]:
        provisioner = {"type": "AWS", "name": NAME, "iidRoots": str(iid_roots), **options}
        with running_ca(tmp_path / "ca", ca_json={"provisioners": [provisioner]}) as ca:
            base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
            env = {**base, "STEPPATH": str(tmp_path / "step"),
                   "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}
            assert_loopback_metadata(env)  # conftest's imds fixture set AWS_* in os.environ
            yield ca, env
    return start


def _certificate(env: dict[str, str], cwd: Path, name: str, *extra: str,
                 check: bool = True) -> Any:
    done = run_step("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--issuer", NAME,
                    *extra, env=env, cwd=cwd, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"step ca certificate {name}: {done.stderr}")
    return done


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(certificate: x509.Certificate) -> list[str]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in names]


def test_step_ca_certificate_on_an_ec2_instance(aws_ca: Any, imds: AwsImdsEmulator,
                                                tmp_path: Path) -> None:
    with aws_ca(accounts=["123456789012"], instanceAge="1h") as (_ca, env):
        _certificate(env, tmp_path, "foo.internal")
        certificate = _load(tmp_path / "foo.internal.crt")
        # given no --san, step asks for the instance's own names and the subject
        assert _sans(certificate) == [DNS_NAME, "foo.internal", "10.0.1.17"]
        extension = ProvisionerExtension.from_certificate(certificate)
        assert extension is not None
        assert (extension.type_name, extension.name, extension.credential_id) == (
            "AWS", NAME, "123456789012")
        assert list(extension.key_values) == ["InstanceID", imds.instance.instance_id]
        # botocore asked over an IMDSv2 session
        assert [r.method for r in imds.requests] == ["PUT", "GET", "GET"]

        # trust on first use: the instance has had its certificate; it renews from now on
        again = _certificate(env, tmp_path, "bar.internal", check=False)
        assert again.returncode == 1 and "already used" in again.stderr
        assert not (tmp_path / "bar.internal.crt").exists()
        run_step("ca", "renew", "foo.internal.crt", "foo.internal.key", "--force", env=env,
                 cwd=tmp_path)
        renewed = _load(tmp_path / "foo.internal.crt")
        assert renewed.serial_number != certificate.serial_number
        assert _sans(renewed) == _sans(certificate)


def test_refused_identities_spend_nothing(aws_ca: Any, imds: AwsImdsEmulator,
                                          tmp_path: Path) -> None:
    with aws_ca(accounts=["123456789012"], instanceAge="1h") as (_ca, env):
        genuine = imds.instance
        refusals = [
            (replace(genuine, account_id="999999999999"), None, "account is not allowed"),
            (replace(genuine, pending_time=datetime.now(UTC) - timedelta(hours=2)), None,
             "older than instanceAge"),
            (genuine, SigningKey("not AWS"), "signature does not verify"),
        ]
        for instance, forger, reason in refusals:
            imds.instance, imds.forger = instance, forger
            refused = _certificate(env, tmp_path, "foo.internal", check=False)
            assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
            assert not (tmp_path / "foo.internal.crt").exists()
        # none of them burnt the instance's one certificate
        imds.instance, imds.forger = genuine, None
        _certificate(env, tmp_path, "foo.internal")


def test_disable_custom_sans_limits_the_names(aws_ca: Any, tmp_path: Path) -> None:
    with aws_ca(disableCustomSANs=True, disableTrustOnFirstUse=True) as (_ca, env):
        refused = _certificate(env, tmp_path, "foo.internal", check=False)
        assert refused.returncode == 1 and "subject must be the instance id" in refused.stderr
        refused = _certificate(env, tmp_path, DNS_NAME, "--san", DNS_NAME, "--san",
                               "foo.internal", check=False)
        assert refused.returncode == 1 and "valid DNS names" in refused.stderr
        # the names AWS vouches for: the private DNS name and IP, both in the certificate
        _certificate(env, tmp_path, DNS_NAME)
        assert _sans(_load(tmp_path / f"{DNS_NAME}.crt")) == [DNS_NAME, "10.0.1.17"]
        # given no --san, step asks for just those, whatever the subject AWS allows
        instance_id = AwsInstance().instance_id
        _certificate(env, tmp_path, instance_id)
        assert _sans(_load(tmp_path / f"{instance_id}.crt")) == [DNS_NAME, "10.0.1.17"]
        _certificate(env, tmp_path, "10.0.1.17", "--san", DNS_NAME, "--san", "10.0.1.17")
        certificate = _load(tmp_path / "10.0.1.17.crt")
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert names.value.get_values_for_type(x509.DNSName) == [DNS_NAME]
        assert names.value.get_values_for_type(x509.IPAddress) == [IPv4Address("10.0.1.17")]


def test_imdsv1_only_and_imdsv2_only_instances(aws_ca: Any, imds: AwsImdsEmulator,
                                               tmp_path: Path) -> None:
    with aws_ca() as (_ca, env):
        imds.imds_versions = ("v1",)  # the session PUT is refused: botocore falls back
        _certificate(env, tmp_path, "v1.internal")
        assert not any("x-aws-ec2-metadata-token" in r.headers for r in imds.requests)
        imds.requests.clear()
        imds.imds_versions = ("v2",)  # a GET without a session is refused
        imds.instance = replace(imds.instance, instance_id="i-0fedcba9876543210")
        _certificate(env, tmp_path, "v2.internal")
        assert [r.method for r in imds.requests] == ["PUT", "GET", "GET"]
        assert all(r.headers.get("x-aws-ec2-metadata-token") for r in imds.requests[1:])


def test_a_v2_only_provisioner_on_a_v1_only_instance_is_one_line(
        aws_ca: Any, imds: AwsImdsEmulator, tmp_path: Path) -> None:
    with aws_ca(imdsVersions=["v2"]) as (_ca, env):
        imds.imds_versions = ("v1",)
        done = _certificate(env, tmp_path, "foo.internal", check=False)
        assert done.returncode == 1 and done.stdout == "", done.stderr
        chosen, error = done.stderr.splitlines()
        assert chosen.endswith(f"Provisioner: {NAME} (AWS)")
        assert error.startswith(f"provisioner '{NAME}': cannot get the instance identity "
                                f"document from the AWS instance metadata service at {imds.url}")
        assert [r.method for r in imds.requests] == ["PUT"]
