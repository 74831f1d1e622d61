"""The AWS client (what ``step ca certificate`` runs for an AWS provisioner) against the
provisioner client contract: botocore's IMDS fetcher asks the metadata emulator on 127.0.0.1
(``AWS_EC2_METADATA_SERVICE_ENDPOINT``, set and checked by conftest) for the identity document,
over an IMDSv2 session or IMDSv1 as the emulator and the provisioner's ``imdsVersions`` allow,
and the token it makes is one the AWS provisioner accepts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import stepca_aws
from stepca.jose import b64url_decode, parse_unverified
from stepca.provisioner_client import TokenRequest
from stepca.testing.cloud import AwsImdsEmulator
from stepca.testing.contracts import MakeTokenRequest, ProvisionerClientContract
from stepca_aws.client import AWSClient

NAME = "amazon"
TOKEN_PATH = "/latest/api/token"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
SIGNATURE_PATH = "/latest/dynamic/instance-identity/signature"


def _request(provisioner: Mapping[str, Any], audience: str = "https://ca.example:9000/1.0/sign",
             *, subject: str = "client.example.com", sans: list[str] | None = None
             ) -> TokenRequest:
    """The CLI's request; a revocation's carries no SANs, a sign's at least the subject."""
    if sans is None and not audience.endswith("/revoke"):
        sans = [subject]
    return TokenRequest(
        provisioner=provisioner, ca_url=audience.rsplit("/1.0/", 1)[0], audience=audience,
        subject=subject, sans=sans, command="step ca certificate")


class TestAWSClientContract(ProvisionerClientContract):
    plugin = stepca_aws

    @pytest.fixture
    def provisioner_config(self, iid_roots: Path) -> dict[str, Any]:
        return {"type": "AWS", "name": NAME, "iidRoots": str(iid_roots)}

    @pytest.fixture
    def token_request(self, provisioner_config: dict[str, Any]) -> MakeTokenRequest:
        def request(subject: str, *, sans: list[str], audience: str) -> TokenRequest:
            return _request(provisioner_config, audience, sans=sans, subject=subject)
        return request


def _paths(imds: AwsImdsEmulator) -> list[tuple[str, str, bool]]:
    """What the client asked: method, path, and whether it sent an IMDSv2 session token."""
    return [(r.method, r.path, "x-aws-ec2-metadata-token" in r.headers) for r in imds.requests]


def test_steps_token_from_an_imdsv2_session(imds: AwsImdsEmulator,
                                            assert_loopback_metadata: Callable[..., None]) -> None:
    assert_loopback_metadata(os.environ)
    imds.imds_versions = ("v2",)  # a GET without the session token would be refused
    token = AWSClient().token(_request({"type": "AWS", "name": "Amazon Web Services"},
                                       subject="web.internal"))
    assert _paths(imds) == [("PUT", TOKEN_PATH, False), ("GET", DOCUMENT_PATH, True),
                            ("GET", SIGNATURE_PATH, True)]
    parsed = parse_unverified(token)
    assert parsed.header == {"alg": "HS256", "typ": "JWT"}
    claims = parsed.claims
    document = base64.b64decode(claims["amazon"]["document"])
    signature = base64.b64decode(claims["amazon"]["signature"])
    assert document == imds.instance.document()
    imds.signer.private.public_key().verify(signature, document, padding.PKCS1v15(),
                                            hashes.SHA256())
    # step's claims: no SANs (the CSR carries them), the instance's id as jti, five minutes
    assert sorted(claims) == ["amazon", "aud", "exp", "iat", "iss", "jti", "nbf", "sub"]
    assert (claims["iss"], claims["sub"]) == ("ec2.amazonaws.com", "web.internal")
    assert claims["aud"] == ["https://ca.example:9000/1.0/sign#aws/Amazon%20Web%20Services"]
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    unique = f"aws/Amazon Web Services.{imds.instance.instance_id}"
    assert claims["jti"] == hashlib.sha256(unique.encode()).hexdigest()
    # the HMAC key is the raw signature
    signing_input, _, mac = token.rpartition(".")
    assert b64url_decode(mac) == hmac.new(signature, signing_input.encode(),
                                          hashlib.sha256).digest()


def test_falls_back_to_imdsv1_when_the_session_put_is_refused(imds: AwsImdsEmulator) -> None:
    imds.imds_versions = ("v1",)
    AWSClient().token(_request({"type": "AWS", "name": NAME}))
    assert _paths(imds) == [("PUT", TOKEN_PATH, False), ("GET", DOCUMENT_PATH, False),
                            ("GET", SIGNATURE_PATH, False)]


def _refusal(provisioner: Mapping[str, Any]) -> str:
    with pytest.raises(ValueError) as refused:
        AWSClient().token(_request(provisioner))
    message = str(refused.value)
    assert "\n" not in message and len(message) < 500
    return message


def test_a_v2_only_provisioner_never_falls_back_to_v1(imds: AwsImdsEmulator) -> None:
    imds.imds_versions = ("v1",)
    message = _refusal({"type": "AWS", "name": NAME, "imdsVersions": ["v2"]})
    assert message.startswith("cannot get the instance identity document from the AWS instance "
                              f"metadata service at {imds.url}")
    assert _paths(imds) == [("PUT", TOKEN_PATH, False)]  # no plain GET was tried


def test_a_v1_only_provisioner_asks_for_no_session(imds: AwsImdsEmulator) -> None:
    AWSClient().token(_request({"type": "AWS", "name": NAME, "imdsVersions": ["v1"]}))
    assert _paths(imds) == [("GET", DOCUMENT_PATH, False), ("GET", SIGNATURE_PATH, False)]


def test_botocore_setting_that_disables_v1_stays_in_force(imds: AwsImdsEmulator,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
    imds.imds_versions = ("v1",)
    _refusal({"type": "AWS", "name": NAME, "imdsVersions": ["v1", "v2"]})
    assert ("GET", DOCUMENT_PATH, False) not in _paths(imds)


def test_a_metadata_service_that_is_down_is_one_line(imds: AwsImdsEmulator,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    gone = AwsImdsEmulator().start()
    url = gone.url
    gone.stop()  # nothing listens on its port any more
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
    message = _refusal({"type": "AWS", "name": NAME})
    assert message.startswith("cannot get the instance identity document") and url in message


def test_no_revocation_tokens(imds: AwsImdsEmulator) -> None:
    with pytest.raises(ValueError, match="only /sign"):
        AWSClient().token(_request({"type": "AWS", "name": NAME},
                                   "https://ca.example/1.0/revoke"))
    assert imds.requests == []  # the metadata service was not even asked


@pytest.mark.parametrize("versions", [["v3"], "v2", [1]])
def test_a_provisioner_listing_unknown_imds_versions_is_refused(imds: AwsImdsEmulator,
                                                                versions: Any) -> None:
    assert "imdsVersions" in _refusal({"type": "AWS", "name": NAME, "imdsVersions": versions})
    assert imds.requests == []


def test_the_document_served_is_what_the_token_carries(imds: AwsImdsEmulator) -> None:
    token = AWSClient().token(_request({"type": "AWS", "name": NAME}))
    document = base64.b64decode(parse_unverified(token).claims["amazon"]["document"])
    assert json.loads(document)["instanceId"] == imds.instance.instance_id


def test_step_help_imports_neither_botocore_nor_the_client() -> None:
    import subprocess
    import sys

    code = ("import json, sys\nsys.argv = ['step', '--help']\nfrom stepca_cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps([m in sys.modules for m in ('stepca_aws', 'stepca_aws.client', "
            "'botocore')]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    # the plugin is loaded (its hooks are registered), its client and botocore are not
    assert json.loads(done.stdout.splitlines()[-1]) == [True, False, False]
