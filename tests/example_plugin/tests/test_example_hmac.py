"""The HMAC provisioner: the shared provisioner contract, its own rules, and a CA in-process."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from joserfc import jwt
from joserfc.jwk import OctKey

import stepca_example_hmac
from stepca.errors import Unauthorized
from stepca.jose import parse_unverified
from stepca.testing import TestCA, TestPKI, make_csr
from stepca.provisioner_client import TokenRequest
from stepca.testing.contracts import (MakeTokenRequest, ProvisionerClientContract,
                                      ProvisionerContract, SignToken)
from stepca.timeutil import utcnow
from stepca.x509util import ProvisionerExtension

SECRET = secrets.token_bytes(32)
ENTRY = {"type": "HMAC", "name": "ci",
         "secret": base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()}


def hs256(claims: dict[str, Any], secret: bytes = SECRET, alg: str = "HS256") -> str:
    """A token made by an independent JWT library, as a workload would make it."""
    return jwt.encode({"alg": alg}, claims, OctKey.import_key(secret), algorithms=[alg])


def claims_for(subject: str, *, sans: list[str] | None = None,
               audience: str = "https://localhost:9000/1.0/sign", issuer: str = "ci",
               lifetime: timedelta = timedelta(minutes=5), now: Any = None,
               **overrides: Any) -> dict[str, Any]:
    now = now or utcnow()
    claims = {"iss": issuer, "sub": subject, "sans": sans if sans is not None else [subject],
              "aud": audience, "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
              "exp": int((now + lifetime).timestamp()), "jti": secrets.token_hex(16)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


class TestHMACClientContract(ProvisionerClientContract):
    """The client step ca token/certificate run for HMAC provisioners: the shared secret comes
    from --provisioner-password-file."""

    plugin = stepca_example_hmac

    @pytest.fixture
    def provisioner_config(self) -> dict[str, Any]:
        return dict(ENTRY)

    @pytest.fixture
    def token_request(self) -> MakeTokenRequest:
        def request(subject: str, *, sans: list[str], audience: str) -> TokenRequest:
            return TokenRequest(
                provisioner=ENTRY, ca_url=audience.rsplit("/1.0/", 1)[0], audience=audience,
                subject=subject, sans=sans, password=ENTRY["secret"].encode(),
                command="step ca token")
        return request


class TestHMACContract(ProvisionerContract):
    plugin = stepca_example_hmac

    @pytest.fixture
    def provisioner_config(self) -> dict[str, Any]:
        return dict(ENTRY)

    @pytest.fixture
    def sign_token(self) -> SignToken:
        def sign(subject: str, *, sans: list[str], audience: str,
                 lifetime: timedelta = timedelta(minutes=5), now: Any = None,
                 **claims: Any) -> str:
            return hs256(claims_for(subject, sans=sans, audience=audience, lifetime=lifetime,
                                    now=now, **claims))
        return sign

    # -- rules of this provisioner beyond the contract ---------------------------------------

    def test_own_signer_matches_an_independent_library(self, provisioner: Any) -> None:
        claims = claims_for("a.example")
        ours = stepca_example_hmac.sign_token(claims, SECRET)
        assert parse_unverified(ours).claims == parse_unverified(hs256(claims)).claims
        assert provisioner.authorize_sign(parse_unverified(ours)).token_id == claims["jti"]

    def test_refuses_another_secret(self, provisioner: Any) -> None:
        token = hs256(claims_for("a.example"), secret=secrets.token_bytes(32))
        with pytest.raises(Unauthorized, match="signature"):
            provisioner.authorize_sign(parse_unverified(token))

    def test_refuses_other_hmac_algorithms(self, provisioner: Any) -> None:
        token = hs256(claims_for("a.example"), secret=SECRET * 2, alg="HS512")
        with pytest.raises(Unauthorized, match="HS512 is not HS256"):
            provisioner.authorize_sign(parse_unverified(token))

    def test_requires_a_jti(self, provisioner: Any) -> None:
        token = hs256(claims_for("a.example", jti=None))
        with pytest.raises(Unauthorized, match="jti"):
            provisioner.authorize_sign(parse_unverified(token))

    def test_refuses_another_issuer(self, provisioner: Any) -> None:
        token = hs256(claims_for("a.example", issuer="admin"))
        assert type(provisioner).token_lookup_key(parse_unverified(token)) not in \
            provisioner.lookup_keys
        with pytest.raises(Unauthorized, match="issuer"):
            provisioner.authorize_sign(parse_unverified(token))

    def test_revoke_tokens_need_the_revoke_audience(self, provisioner: Any) -> None:
        revoke = hs256(claims_for("a.example", audience="https://127.0.0.1/1.0/revoke"))
        assert provisioner.authorize_revoke(parse_unverified(revoke))
        sign = hs256(claims_for("a.example"))
        with pytest.raises(Unauthorized, match="audience"):
            provisioner.authorize_revoke(parse_unverified(sign))

    def test_never_lists_its_secret(self, provisioner: Any) -> None:
        listed = json.dumps(provisioner.public_json())
        assert ENTRY["secret"] not in listed and "secret" not in provisioner.public_json()

    @pytest.mark.parametrize(("secret", "message"), [
        (None, "needs a 'secret'"),
        ("", "needs a 'secret'"),
        (base64.urlsafe_b64encode(b"x" * 31).decode(), "at least 32 bytes, got 31"),
        ("not base64!", "not base64url"),
    ])
    def test_refuses_an_unusable_secret(self, provisioner_context: Any, secret: Any,
                                        message: str) -> None:
        entry = {**ENTRY, "secret": secret}
        with pytest.raises(ValueError, match=message):
            stepca_example_hmac.HMACProvisioner.from_config(entry, context=provisioner_context)


# -- in-process: the real authority and HTTP API, the plugin registered without installing it --

@pytest.fixture
def hmac_ca(stepca_pki: TestPKI, tmp_path: Path) -> Any:
    config = stepca_pki.config(tmp_path, db={"type": "memory"}, provisioners=[ENTRY])
    ca = TestCA(config, plugins=[stepca_example_hmac], load_entrypoints=False)
    yield ca
    ca.close()


def test_issues_a_certificate(hmac_ca: Any, stepca_pki: TestPKI) -> None:
    csr, key = make_csr("svc.internal", ["svc.internal", "10.1.2.3"])
    claims = claims_for("svc.internal", sans=["svc.internal", "10.1.2.3"])
    response = hmac_ca.sign(csr, hs256(claims))
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    assert cert.subject.rfc4514_string() == "CN=svc.internal"
    assert cert.public_key() == key.public_key()
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["svc.internal", "10.1.2.3"]
    assert ProvisionerExtension.from_certificate(cert) == ProvisionerExtension(0, "ci", "ci")
    intermediate = x509.load_pem_x509_certificate(response.json["ca"].encode())
    cert.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(stepca_pki.root)
    stored = hmac_ca.authority.certificates.get_certificate(cert.serial_number)
    assert stored is not None and stored[1].type == "HMAC" and stored[1].name == "ci"

    replay = hmac_ca.sign(make_csr("svc.internal", ["svc.internal", "10.1.2.3"])[0],
                          hs256(claims))
    assert replay.status_code == 401
    assert replay.json["message"].endswith("token already used.")


def test_refused_requests_spend_nothing(hmac_ca: Any) -> None:
    claims = claims_for("svc.internal")
    csr, _ = make_csr("other.internal")
    refused = hmac_ca.sign(csr, hs256(claims))
    assert refused.status_code == 403
    forged = hmac_ca.sign(make_csr("svc.internal")[0],
                          hs256(claims, secret=secrets.token_bytes(32)))
    assert forged.status_code == 401
    # the same token, with a CSR it does authorize, still works: nothing was spent
    assert hmac_ca.sign(make_csr("svc.internal")[0], hs256(claims)).status_code == 201


def test_provisioners_endpoint_hides_the_secret(hmac_ca: Any) -> None:
    listed = hmac_ca.client.simulate_get("/1.0/provisioners")
    assert listed.status_code == 200
    assert listed.json["provisioners"] == [{"type": "HMAC", "name": "ci"}]
    assert ENTRY["secret"] not in listed.text


def test_cli_command_makes_tokens_the_ca_accepts(hmac_ca: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stepca_example_hmac.cli import hmac_group

    secret_file = tmp_path / "ci.secret"
    secret_file.write_text(ENTRY["secret"] + "\n")
    result = CliRunner().invoke(hmac_group, [
        "token", "svc.internal", "--provisioner", "ci", "--secret-file", str(secret_file),
        "--ca-url", "https://localhost:9000", "--san", "svc.internal"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert parse_unverified(token).claims["aud"] == "https://localhost:9000/1.0/sign"
    assert hmac_ca.sign(make_csr("svc.internal")[0], token).status_code == 201
