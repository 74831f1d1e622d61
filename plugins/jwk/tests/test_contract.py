"""The JWK provisioner against the provisioner contract, with tokens made as ``step ca token``
makes them (``stepca.testing.make_token``) for the PKI ``step ca init`` writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import stepca_jwk
from stepca.jose import jwk_from_key
from stepca.testing import TestPKI, make_token
from stepca.testing.contracts import ProvisionerContract, SignToken


class TestJWKContract(ProvisionerContract):
    plugin = stepca_jwk

    @pytest.fixture
    def provisioner_config(self, stepca_pki: TestPKI) -> dict[str, Any]:
        return dict(stepca_pki.ca_json["authority"]["provisioners"][0])

    @pytest.fixture
    def sign_token(self, stepca_pki: TestPKI) -> SignToken:
        def sign(subject: str, *, sans: list[str], audience: str,
                 lifetime: timedelta = timedelta(minutes=5), now: Any = None,
                 **claims: Any) -> str:
            omit = [name for name, value in claims.items() if value is None]
            kept = {name: value for name, value in claims.items() if value is not None}
            return make_token(stepca_pki, subject, sans=sans, audience=audience,
                              lifetime=lifetime, now=now, omit=omit, **kept)
        return sign


    def test_a_private_key_in_the_config_is_refused(self, stepca_pki: TestPKI,
                                                    provisioner_context: Any) -> None:
        # the private half belongs in encryptedKey, never in what /provisioners lists
        entry = dict(stepca_pki.ca_json["authority"]["provisioners"][0])
        entry["key"] = jwk_from_key(stepca_pki.provisioner_key, private=True)
        with pytest.raises(ValueError, match="must be a public key"):
            stepca_jwk.JWKProvisioner.from_config(entry, context=provisioner_context)

    def test_lists_its_escrowed_key(self, provisioner: Any) -> None:
        listed = provisioner.public_json()
        assert "d" not in listed["key"] and listed["encryptedKey"].count(".") == 4
        assert provisioner.encrypted_key(listed["key"]["kid"]) == listed["encryptedKey"]
        assert provisioner.encrypted_key("another-kid") is None
