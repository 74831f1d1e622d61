"""The GCP client (what ``step ca certificate`` runs for a GCP provisioner) against the
provisioner client contract: google-auth asks the metadata emulator on 127.0.0.1
(``GCE_METADATA_HOST``, set and checked by conftest) for the identity, which verifies with the
keys the emulator publishes as Google's and which the GCP provisioner accepts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

import stepca_gcp
from stepca.provisioner_client import TokenRequest
from stepca.testing.cloud import GcpMetadataEmulator
from stepca.testing.contracts import MakeTokenRequest, ProvisionerClientContract
from stepca_gcp.client import GCPClient

NAME = "google"


def _request(provisioner: dict[str, Any], audience: str, *,
             sans: list[str] | None) -> TokenRequest:
    return TokenRequest(
        provisioner=provisioner, ca_url=audience.rsplit("/1.0/", 1)[0], audience=audience,
        subject="client.example.com", sans=sans, command="step ca certificate")


class TestGCPClientContract(ProvisionerClientContract):
    plugin = stepca_gcp

    @pytest.fixture
    def provisioner_config(self, google: Any) -> dict[str, Any]:
        return {"type": "GCP", "name": NAME, "jwksURL": google.jwks_url}

    @pytest.fixture
    def provisioner(self, provisioner_config: dict[str, Any],
                    provisioner_context: Any) -> Iterator[Any]:
        built = stepca_gcp.GCPProvisioner.from_config(provisioner_config,
                                                      context=provisioner_context)
        assert built.keys.wait_fetched(1, timeout=10) and built.keys.ready, built.keys.reason
        yield built
        built.keys.stop()

    @pytest.fixture
    def token_request(self, provisioner_config: dict[str, Any]) -> MakeTokenRequest:
        def request(subject: str, *, sans: list[str], audience: str) -> TokenRequest:
            return _request(provisioner_config, audience, sans=sans)
        return request

    def test_asks_for_the_full_identity_for_the_sign_audience(
            self, google: Any, provisioner_client: Any, provisioner_config: dict[str, Any]
    ) -> None:
        provisioner_client.token(_request(provisioner_config, "https://ca.example:9000/1.0/sign",
                                          sans=["client.example.com"]))
        assert _identity_requests(google) == [{
            "audience": f"https://ca.example:9000/1.0/sign#gcp/{NAME}", "format": "full"}]


def _identity_requests(google: GcpMetadataEmulator) -> list[dict[str, str]]:
    return [r.query for r in google.requests if r.path.endswith("/identity")]


def _refusal(google: GcpMetadataEmulator) -> str:
    with pytest.raises(ValueError) as refused:
        GCPClient().token(_request({"type": "GCP", "name": NAME},
                                   "https://ca.example/1.0/sign", sans=["a"]))
    message = str(refused.value)
    assert message.startswith("cannot get the instance identity token") and "\n" not in message
    return message


def test_a_metadata_error_is_one_clear_line(google: GcpMetadataEmulator) -> None:
    google.identity_status = 404  # the body the emulator sends is two lines
    _refusal(google)
    assert len(_identity_requests(google)) == 1


def test_an_instance_without_a_service_account_is_one_line(google: GcpMetadataEmulator) -> None:
    google.instance = replace(google.instance, service_account_email=None)
    _refusal(google)
    assert _identity_requests(google) == []  # google-auth asked for the account first


def test_google_auth_fetches_a_full_id_token_that_verifies_with_the_published_keys(
        google: GcpMetadataEmulator,
        assert_loopback_metadata: Callable[[Mapping[str, str]], None]) -> None:
    assert_loopback_metadata(os.environ)
    token = GCPClient().token(_request({"type": "GCP", "name": "Google Cloud"},
                                       "https://ca.internal:9000/1.0/sign", sans=["a"]))
    published = requests.get(google.jwks_url, timeout=10)
    assert published.status_code == 200 and "max-age=" in published.headers["Cache-Control"]
    claims = jwt.decode(token, KeySet.import_key_set(published.json()),
                        algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(leeway=60).validate(claims)  # exp, nbf, iat
    audience = "https://ca.internal:9000/1.0/sign#gcp/Google%20Cloud"
    assert (claims["iss"], claims["aud"]) == ("https://accounts.google.com", audience)
    assert claims["email"] == google.instance.service_account_email
    assert claims["sub"] == claims["azp"] == google.instance.service_account_id
    engine = claims["google"]["compute_engine"]
    assert (engine["project_id"], engine["instance_name"], engine["instance_id"],
            engine["zone"]) == ("stepca-test", "web-1", google.instance.instance_id,
                                google.instance.zone)
    assert _identity_requests(google) == [{"audience": audience, "format": "full"}]
    metadata = [r for r in google.requests if r.path.startswith("/computeMetadata/")]
    assert metadata and all(r.headers["metadata-flavor"] == "Google" for r in metadata)


def test_no_revocation_tokens(google: GcpMetadataEmulator) -> None:
    with pytest.raises(ValueError, match="only /sign"):
        GCPClient().token(_request({"type": "GCP", "name": NAME},
                                   "https://ca.example/1.0/revoke", sans=None))
    assert google.requests == []  # the metadata server was not even asked
