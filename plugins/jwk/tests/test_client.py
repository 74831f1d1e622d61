"""The JWK client (what ``step ca token`` runs for a JWK provisioner) against the provisioner
client contract: its escrowed key, unlocked with the password, signs tokens the JWK provisioner
accepts."""

from __future__ import annotations

from typing import Any

import pytest

import stepca_jwk
from stepca.provisioner_client import TokenRequest
from stepca.testing import TestPKI
from stepca.testing.contracts import MakeTokenRequest, ProvisionerClientContract


class TestJWKClientContract(ProvisionerClientContract):
    plugin = stepca_jwk

    @pytest.fixture
    def provisioner_config(self, stepca_pki: TestPKI) -> dict[str, Any]:
        return dict(stepca_pki.ca_json["authority"]["provisioners"][0])

    @pytest.fixture
    def token_request(self, stepca_pki: TestPKI,
                      provisioner_config: dict[str, Any]) -> MakeTokenRequest:
        def request(subject: str, *, sans: list[str], audience: str) -> TokenRequest:
            return TokenRequest(
                provisioner=provisioner_config, ca_url=audience.rsplit("/1.0/", 1)[0],
                audience=audience, subject=subject, sans=sans,
                root_fingerprint=stepca_pki.fingerprint, password=stepca_pki.password,
                command="step ca token")
        return request
