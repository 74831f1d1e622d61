"""The Azure client (what ``step ca certificate`` runs for an Azure provisioner) against the
provisioner client contract: azure-core asks the metadata emulator on 127.0.0.1 for the VM's
cloud and azure-identity for the managed identity token (``AZURE_POD_IDENTITY_AUTHORITY_HOST``,
set and checked by conftest), which verifies with the tenant keys the emulator publishes and
which the Azure provisioner accepts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

import stepca_azure
from stepca.jose import parse_unverified
from stepca.provisioner_client import TokenRequest
from stepca.testing.cloud import AzureImdsEmulator
from stepca.testing.contracts import MakeTokenRequest, ProvisionerClientContract
from stepca_azure.client import AzureClient, resource_of

NAME = "azure"
PUBLIC = "https://management.azure.com/"


def _request(provisioner: dict[str, Any], audience: str = "https://ca.example/1.0/sign", *,
             sans: list[str] | None = None) -> TokenRequest:
    return TokenRequest(
        provisioner=provisioner, ca_url=audience.rsplit("/1.0/", 1)[0], audience=audience,
        subject="client.example.com", sans=["client.example.com"] if sans is None else sans,
        command="step ca certificate")


def _token_requests(azure: AzureImdsEmulator) -> list[dict[str, str]]:
    return [r.query for r in azure.requests if r.path == "/metadata/identity/oauth2/token"]


class TestAzureClientContract(ProvisionerClientContract):
    plugin = stepca_azure

    @pytest.fixture
    def provisioner_config(self, azure: AzureImdsEmulator) -> dict[str, Any]:
        return {"type": "Azure", "name": NAME, "tenantID": azure.instance.tenant_id,
                "openidConfigurationURL": azure.discovery_url()}

    @pytest.fixture
    def provisioner(self, provisioner_config: dict[str, Any],
                    provisioner_context: Any) -> Iterator[Any]:
        built = stepca_azure.AzureProvisioner.from_config(provisioner_config,
                                                          context=provisioner_context)
        assert built.provider.wait_fetched(timeout=10) and built.provider.ready
        yield built
        built.provider.stop()

    @pytest.fixture
    def token_request(self, provisioner_config: dict[str, Any]) -> MakeTokenRequest:
        def request(subject: str, *, sans: list[str], audience: str) -> TokenRequest:
            return _request(provisioner_config, audience, sans=sans)
        return request

    def test_a_token_for_another_ca_is_refused(self, provisioner: Any,
                                               provisioner_client: Any,
                                               token_request: MakeTokenRequest) -> None:
        # Not so for Azure, as step-ca: a managed identity token is for Azure's management
        # resource, not for a CA, so any CA trusting the tenant takes it; trust on first use
        # keeps it to one certificate per VM (README, docs/compatibility.md).
        token = provisioner_client.token(token_request(
            "client.example.com", sans=["client.example.com"],
            audience="https://elsewhere.example:9000/1.0/sign"))
        assert parse_unverified(token).claims["aud"] == PUBLIC
        assert provisioner.authorize_sign(parse_unverified(token)).token_id

    def test_asks_for_the_environment_then_its_resource(
            self, azure: AzureImdsEmulator, provisioner_client: Any,
            provisioner_config: dict[str, Any]) -> None:
        provisioner_client.token(_request(provisioner_config))
        environment, token = [r for r in azure.requests if r.path.startswith("/metadata/")]
        assert (environment.path, environment.query) == (
            "/metadata/instance/compute/azEnvironment",
            {"format": "text", "api-version": "2021-02-01"})
        assert environment.headers["metadata"] == "true"
        assert token.query == {"api-version": "2018-02-01", "resource": PUBLIC}
        assert token.headers["metadata"] == "true"


@pytest.mark.parametrize(("environment", "resource"), [
    ("AzureUSGovernmentCloud", "https://management.usgovcloudapi.net/"),
    ("AzureChinaCloud", "https://management.chinacloudapi.cn/"),
    ("AzureGermanCloud", "https://management.microsoftazure.de/"),
    ("AzureCloud", PUBLIC),
    ("SomeFutureCloud", PUBLIC),  # as step: the public cloud's when the name is unknown
])
def test_the_resource_is_the_vms_clouds(azure: AzureImdsEmulator, environment: str,
                                        resource: str) -> None:
    azure.instance = replace(azure.instance, environment=environment)
    token = AzureClient().token(_request({"type": "Azure", "name": NAME}))
    assert parse_unverified(token).claims["aud"] == resource
    assert [q["resource"] for q in _token_requests(azure)] == [resource]
    assert resource_of(environment + "\n") == resource


def test_the_provisioners_audience_does_not_change_the_resource(azure: AzureImdsEmulator) -> None:
    # as smallstep's step: the cloud decides the resource, not the provisioner's audience
    AzureClient().token(_request({"type": "Azure", "name": NAME,
                                  "audience": "https://vault.azure.net"}))
    assert [q["resource"] for q in _token_requests(azure)] == [PUBLIC]


def test_the_sdk_fetches_a_token_that_verifies_with_the_tenant_keys(
        azure: AzureImdsEmulator,
        assert_loopback_identity: Callable[[Mapping[str, str]], None]) -> None:
    assert_loopback_identity(os.environ)
    token = AzureClient().token(_request({"type": "Azure", "name": NAME}))
    discovery = requests.get(azure.discovery_url(), timeout=10).json()
    published = requests.get(discovery["jwks_uri"], timeout=10)
    assert "max-age=" in published.headers["Cache-Control"]
    claims = jwt.decode(token, KeySet.import_key_set(published.json()),
                        algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(leeway=60).validate(claims)  # exp, nbf, iat
    assert (claims["iss"], claims["tid"], claims["aud"]) == (
        discovery["issuer"], azure.instance.tenant_id, PUBLIC)
    assert claims["xms_mirid"] == azure.instance.mirid


def _refusal() -> str:
    with pytest.raises(ValueError) as refused:
        AzureClient().token(_request({"type": "Azure", "name": NAME}))
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_no_managed_identity_is_one_clear_line(azure: AzureImdsEmulator) -> None:
    azure.identity_status = 400  # IMDS's answer on a VM without a managed identity
    message = _refusal()
    assert message.startswith(f"cannot get the managed identity token from the Azure instance "
                              f"metadata service at {azure.url} (is this an Azure VM with a "
                              f"managed identity?): ")
    assert len(_token_requests(azure)) == 1


def test_a_metadata_service_that_is_down_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                     assert_loopback_identity: Any) -> None:
    gone = AzureImdsEmulator().start()
    url = gone.url
    gone.stop()  # nothing listens on its port any more
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url)
    assert_loopback_identity(os.environ)
    message = _refusal()
    # the cloud is asked first, with few retries: a VM that is none learns it at once
    assert message.startswith(f"cannot get the Azure environment from the instance metadata "
                              f"service at {url} (is this an Azure VM?): ")


def test_no_revocation_tokens(azure: AzureImdsEmulator) -> None:
    with pytest.raises(ValueError, match="only /sign"):
        AzureClient().token(TokenRequest(
            provisioner={"type": "Azure", "name": NAME}, ca_url="https://ca.example",
            audience="https://ca.example/1.0/revoke", subject="123", sans=None,
            command="step ca revoke"))
    assert azure.requests == []  # the metadata service was not even asked


def test_the_guard_keeps_every_other_managed_identity_setting_away(
        azure: AzureImdsEmulator, client_env: Any, assert_loopback_identity: Any) -> None:
    real = "http://169.254.169.254"
    env = client_env({"PATH": "/bin", "IDENTITY_ENDPOINT": f"{real}/msi/token",
                      "IDENTITY_HEADER": "secret", "MSI_ENDPOINT": real, "IMDS_ENDPOINT": real,
                      "AZURE_POD_IDENTITY_AUTHORITY_HOST": real}, azure)
    assert env == {"PATH": "/bin", "AZURE_POD_IDENTITY_AUTHORITY_HOST": azure.url,
                   "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    for refused in ({}, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": real},
                    {"AZURE_POD_IDENTITY_AUTHORITY_HOST": azure.url, "MSI_ENDPOINT": real}):
        with pytest.raises(AssertionError):
            assert_loopback_identity(refused)
