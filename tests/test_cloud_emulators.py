"""The cloud metadata emulators (stepca.testing.cloud): each speaks its cloud's protocol as the
SDKs use it (the plugins' clients are tested against them in plugins/*/tests), signs what the
CA is told to trust, and can forge, expire, alter, rotate and delay what it serves; forged,
expired and foreign identities do not pass for genuine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import load_pem_x509_certificate
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError
from joserfc.jwk import KeySet
from stepca.testing.cloud import (
    AwsImdsEmulator,
    AwsInstance,
    AzureImdsEmulator,
    AzureInstance,
    GcpInstance,
    GcpMetadataEmulator,
    SigningKey,
)

SIGN_AUDIENCE = "https://ca.internal:9000/1.0/sign#gcp/Google Cloud"
AZURE_RESOURCE = "https://management.azure.com/"


def published_keys(url: str) -> tuple[KeySet, str]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return KeySet.import_key_set(response.json()), response.headers.get("Cache-Control", "")


def verified_claims(token: str, keys: KeySet) -> dict:
    claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(leeway=60).validate(claims)  # exp, nbf, iat
    return claims


@pytest.fixture
def aws() -> Iterator[AwsImdsEmulator]:
    instance = AwsInstance(account_id="210987654321", instance_id="i-0fedcba9876543210",
                           private_ip="10.9.8.7", region="eu-west-3")
    with AwsImdsEmulator(instance) as emulator:
        yield emulator


@pytest.fixture
def gcp() -> Iterator[GcpMetadataEmulator]:
    with GcpMetadataEmulator(GcpInstance(project_id="stepca-proof", instance_name="web-1")) as e:
        yield e


@pytest.fixture
def azure() -> Iterator[AzureImdsEmulator]:
    with AzureImdsEmulator(AzureInstance(resource_group="proof-rg", vm_name="web-1")) as e:
        yield e


# AWS


def _verify_document(emulator: AwsImdsEmulator, document: bytes, signature: bytes) -> None:
    certificate = load_pem_x509_certificate(emulator.certificate_pem)
    certificate.public_key().verify(signature, document, padding.PKCS1v15(), hashes.SHA256())


def test_the_aws_emulator_speaks_imds_to_a_plain_client(aws) -> None:
    aws.imds_versions = ("v2",)
    document_url = aws.url + "/latest/dynamic/instance-identity/document"
    assert requests.get(document_url, timeout=10).status_code == 401  # HttpTokens: required
    token_url = aws.url + "/latest/api/token"
    assert requests.put(token_url, timeout=10).status_code == 400  # no TTL
    assert requests.put(token_url, timeout=10, headers={
        "X-aws-ec2-metadata-token-ttl-seconds": "30", "X-Forwarded-For": "10.0.0.1"}
    ).status_code == 403
    token = requests.put(token_url, timeout=10,
                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "30"}).text
    assert requests.get(document_url, timeout=10,
                        headers={"X-aws-ec2-metadata-token": "not-a-session"}).status_code == 401
    answer = requests.get(document_url, timeout=10, headers={"X-aws-ec2-metadata-token": token})
    assert json.loads(answer.content)["instanceId"] == "i-0fedcba9876543210"


def test_forged_and_foreign_aws_identities_do_not_pass_for_genuine(aws) -> None:
    aws.forger = SigningKey("not AWS")
    document, forged = aws.identity()
    with pytest.raises(InvalidSignature):
        _verify_document(aws, document, forged)
    aws.forger = None
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    document, signature = aws.identity(account_id="999999999999", pending_time=old)
    _verify_document(aws, document, signature)  # genuine, but another account's and old
    fields = json.loads(document)
    assert fields["accountId"] == "999999999999"
    assert fields["pendingTime"] == old.strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(InvalidSignature):  # a document altered after signing
        _verify_document(aws, document.replace(b"999999999999", b"210987654321"), signature)


# GCP


def test_the_gcp_emulator_wants_the_metadata_flavor_header(gcp) -> None:
    url = gcp.url + "/computeMetadata/v1/instance/service-accounts/default/identity"
    assert requests.get(url, params={"audience": "x"}, timeout=10).status_code == 403
    answer = requests.get(url, params={"audience": "x"}, timeout=10,
                          headers={"Metadata-Flavor": "Google"})
    assert answer.status_code == 200 and answer.headers["Metadata-Flavor"] == "Google"
    assert "google" not in jwt.decode(answer.text, published_keys(gcp.jwks_url)[0]).claims


def test_forged_expired_and_foreign_gcp_tokens(gcp) -> None:
    keys, _ = published_keys(gcp.jwks_url)
    gcp.forger = SigningKey("not Google")
    with pytest.raises(BadSignatureError):  # under the genuine key's kid
        verified_claims(gcp.identity_token(SIGN_AUDIENCE), keys)
    gcp.forger = None
    expired = gcp.identity_token(SIGN_AUDIENCE, issued_at=int(time.time()) - 7200)
    with pytest.raises(ExpiredTokenError):
        verified_claims(expired, keys)
    foreign = verified_claims(gcp.identity_token(SIGN_AUDIENCE, project_id="someone-else"), keys)
    assert foreign["google"]["compute_engine"]["project_id"] == "someone-else"


def test_the_gcp_emulator_fails_or_alters_identities_when_told(gcp) -> None:
    url = gcp.url + "/computeMetadata/v1/instance/service-accounts/default/identity"
    gcp.identity_status = 503
    answer = requests.get(url, params={"audience": "x"}, timeout=10,
                          headers={"Metadata-Flavor": "Google"})
    assert answer.status_code == 503 and answer.headers["Metadata-Flavor"] == "Google"
    keys, _ = published_keys(gcp.jwks_url)
    altered = verified_claims(gcp.identity_token(
        SIGN_AUDIENCE, instance_name=None,
        claims={"iss": "https://evil.example", "email_verified": None}), keys)
    assert altered["iss"] == "https://evil.example" and "email_verified" not in altered
    engine = altered["google"]["compute_engine"]
    assert "instance_name" not in engine and engine["project_id"] == "stepca-proof"


# Azure


def test_the_azure_emulator_wants_the_metadata_header(azure) -> None:
    url = azure.url + "/metadata/identity/oauth2/token"
    params = {"api-version": "2018-02-01", "resource": AZURE_RESOURCE}
    assert requests.get(url, params=params, timeout=10).status_code == 400
    answer = requests.get(url, params=params, headers={"Metadata": "true"}, timeout=10).json()
    assert int(answer["expires_on"]) > time.time() and answer["token_type"] == "Bearer"
    environment = requests.get(azure.url + "/metadata/instance/compute/azEnvironment",
                               params={"format": "text", "api-version": "2021-02-01"},
                               headers={"Metadata": "true"}, timeout=10)
    assert environment.text == "AzurePublicCloud"
    assert requests.get(azure.discovery_url("another-tenant"), timeout=10).status_code == 400


def test_forged_expired_and_foreign_azure_tokens(azure) -> None:
    keys, _ = published_keys(azure.jwks_url)
    azure.forger = SigningKey("not Microsoft")
    with pytest.raises(BadSignatureError):
        verified_claims(azure.access_token(AZURE_RESOURCE), keys)
    azure.forger = None
    expired = azure.access_token(AZURE_RESOURCE, issued_at=int(time.time()) - 2 * 86400)
    with pytest.raises(ExpiredTokenError):
        verified_claims(expired, keys)
    foreign = verified_claims(azure.access_token(AZURE_RESOURCE, tenant_id="other-tenant",
                                                 resource_group="other-rg"), keys)
    assert foreign["tid"] == "other-tenant" and "/resourcegroups/other-rg/" in foreign["xms_mirid"]


# what the CA's key fetching will be tested against


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_a_rotated_key_is_published_and_signs_what_follows(request, cloud: str) -> None:
    emulator = request.getfixturevalue(cloud)
    sign = (lambda: emulator.identity_token(SIGN_AUDIENCE)) if cloud == "gcp" else (
        lambda: emulator.access_token(AZURE_RESOURCE))
    before, _ = published_keys(emulator.jwks_url)
    old_token = sign()
    emulator.rotate(keep_old=False)
    new_token = sign()
    with pytest.raises(InvalidKeyIdError):  # cached keys: the new kid is unknown
        verified_claims(new_token, before)
    after, _ = published_keys(emulator.jwks_url)
    assert verified_claims(new_token, after)
    with pytest.raises(InvalidKeyIdError):  # the old key is withdrawn
        verified_claims(old_token, after)


def test_a_slow_key_endpoint_holds_its_answer_until_the_emulator_stops() -> None:
    emulator = GcpMetadataEmulator().start()
    emulator.keys_delay = 600
    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(requests.get(emulator.jwks_url, timeout=60).status_code))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and not answers  # still held
    emulator.stop()
    waiting.join(30)
    assert answers == [200]


def test_the_emulators_refuse_a_request_body(aws) -> None:
    answer = requests.get(aws.url + "/latest/dynamic/instance-identity/document",
                          data=b"x" * 10, timeout=10)
    assert answer.status_code == 400
    chunked = requests.get(aws.url + "/latest/dynamic/instance-identity/document",
                           data=iter([b"x" * 10]), timeout=10)
    assert chunked.status_code == 400 and chunked.headers["Connection"] == "close"
