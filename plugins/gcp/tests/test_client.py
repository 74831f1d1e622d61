"""The GCP client (what ``step ca certificate`` runs for a GCP provisioner) against the
provisioner client contract: google-auth asks the metadata stand-in on 127.0.0.1
(``GCE_METADATA_HOST``, set by conftest) for the identity, which the GCP provisioner accepts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stepca_gcp
from stepca.provisioner_client import TokenRequest
from stepca.testing.contracts import MakeTokenRequest, ProvisionerClientContract
from stepca_gcp.client import GCPClient

NAME = "google"


def _request(provisioner: dict[str, Any], audience: str, *,
             sans: list[str] | None) -> TokenRequest:
    return TokenRequest(
        provisioner=provisioner, ca_url=audience.rsplit("/1.0/", 1)[0], audience=audience,
        subject="client.example.com", sans=sans, not_before=None, not_after=None,
        root_fingerprint=None, kid=None, key_file=None, password=None,
        password_flag="provisioner-password-file", command="step ca certificate",
        fetch_json=None)


class TestGCPClientContract(ProvisionerClientContract):
    plugin = stepca_gcp

    @pytest.fixture
    def provisioner_config(self, google: Any) -> dict[str, Any]:
        return {"type": "GCP", "name": NAME, "jwksURL": google.certs_url}

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
        assert google.identity_requests == [{
            "audience": [f"https://ca.example:9000/1.0/sign#gcp/{NAME}"], "format": ["full"]}]


def test_a_metadata_error_is_one_clear_line(google: Any) -> None:
    google.identity_status = 404  # an instance without a service account
    with pytest.raises(ValueError) as refused:
        GCPClient().token(_request({"type": "GCP", "name": NAME},
                                   "https://ca.example/1.0/sign", sans=["a"]))
    message = str(refused.value)
    assert message.startswith("cannot get the instance identity token") and "\n" not in message
    assert len(google.identity_requests) == 1


def test_no_revocation_tokens(google: Any) -> None:
    with pytest.raises(ValueError, match="only /sign"):
        GCPClient().token(_request({"type": "GCP", "name": NAME},
                                   "https://ca.example/1.0/revoke", sans=None))
    assert google.identity_requests == []


def test_the_audience_is_escaped_as_go_escapes_a_fragment() -> None:
    from stepca_gcp.client import sign_audience

    assert (sign_audience("https://ca.example:9000/1.0/sign", "Google Cloud/é+ops")
            == "https://ca.example:9000/1.0/sign#gcp/Google%20Cloud/%C3%A9+ops")
