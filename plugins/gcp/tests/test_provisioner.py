"""The GCP provisioner in an in-process CA: identity tokens signed by the metadata emulator's
Google key (``stepca.testing.cloud.GcpMetadataEmulator``, see conftest), whose JWKS the CA
fetches from 127.0.0.1 through ``jwksURL``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptography import x509

import stepca_gcp
from stepca.errors import TokenAlreadyUsed, Unauthorized
from stepca.jose import b64url_decode, b64url_encode, parse_unverified
from stepca.testing import TestCA, TestPKI, make_csr
from stepca.testing.cloud import GcpMetadataEmulator, SigningKey
from stepca.x509util import ProvisionerExtension

NAME = "google"
AUDIENCE = f"https://127.0.0.1:9000/1.0/sign#gcp/{NAME}"

MakeCA = Callable[..., TestCA]
Google = GcpMetadataEmulator


def _entry(google: Google, **options: Any) -> dict[str, Any]:
    return {"type": "GCP", "name": NAME, "jwksURL": google.jwks_url, **options}


@pytest.fixture
def make_ca(stepca_pki: TestPKI, tmp_path: Path, google: Google) -> Iterator[MakeCA]:
    made: list[TestCA] = []

    def make(**options: Any) -> TestCA:
        path = stepca_pki.config(tmp_path / str(len(made)),
                                 provisioners=[_entry(google, **options)])
        ca = TestCA(path)
        made.append(ca)
        keys = _provisioner(ca).keys
        assert keys.wait_fetched(1, timeout=10) and keys.ready, keys.reason
        return ca

    yield make
    for ca in made:
        _provisioner(ca).keys.stop()
        ca.close()


def _provisioner(ca: TestCA) -> Any:
    return ca.authority.provisioners.by_name(NAME)


def _sign(ca: TestCA, token: str, subject: str = "web-1.internal",
          sans: list[str] | None = None) -> Any:
    return ca.sign(make_csr(subject, sans)[0], token)


def _refused(ca: TestCA, token: str, reason: str, **csr: Any) -> None:
    before = ca.rows()
    response = _sign(ca, token, **csr)
    assert response.status_code == 401, response.text
    assert reason in response.json["message"]
    assert ca.rows() == before


def test_issues_for_a_google_signed_identity(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca()
    response = _sign(ca, google.identity_token(AUDIENCE), "web-1.internal",
                     ["web-1.internal", "10.1.2.3"])
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    # without disableCustomSANs the names are the CSR's, as step-ca's
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["web-1.internal", "10.1.2.3"]
    extension = ProvisionerExtension.from_certificate(cert)
    assert extension is not None
    assert (extension.type_name, extension.name, extension.credential_id) == (
        "GCP", NAME, google.instance.service_account_id)
    assert list(extension.key_values) == ["InstanceID", google.instance.instance_id,
                                          "InstanceName", "web-1"]
    assert ca.rows()[:2] == (1, 1)


def test_one_certificate_per_instance(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca()
    assert _sign(ca, google.identity_token(AUDIENCE)).status_code == 201
    before = ca.rows()
    again = _sign(ca, google.identity_token(AUDIENCE, issued_at=int(time.time()) - 5))
    assert again.status_code == 401 and "already used" in again.json["message"]
    assert ca.rows() == before
    # the spent id is step-ca's: sha256("gcp/<name>.<instance id>")
    other = _sign(ca, google.identity_token(AUDIENCE, instance_id="777"))
    assert other.status_code == 201
    spent = hashlib.sha256(f"gcp/{NAME}.777".encode()).hexdigest()
    with pytest.raises(TokenAlreadyUsed):
        ca.authority.certificates.spend_token(spent)


def test_without_trust_on_first_use_an_instance_signs_again(make_ca: MakeCA,
                                                            google: Google) -> None:
    ca = make_ca(disableTrustOnFirstUse=True)
    assert _sign(ca, google.identity_token(AUDIENCE)).status_code == 201
    again = google.identity_token(AUDIENCE, issued_at=int(time.time()) - 5)
    assert _sign(ca, again).status_code == 201


def test_a_resigned_identity_spends_nothing(make_ca: MakeCA, google: Google) -> None:
    # Stricter than step-ca: a forged token cannot burn the instance's one certificate.
    ca = make_ca()
    google.forger = SigningKey("not Google")  # under Google's kid
    _refused(ca, google.identity_token(AUDIENCE), "invalid token signature")
    google.forger = None
    assert _sign(ca, google.identity_token(AUDIENCE)).status_code == 201


def test_a_forged_claim_spends_nothing(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca(projectIDs=["stepca-test"])
    header, payload, signature = google.identity_token(AUDIENCE).split(".")
    other = google.identity_token(AUDIENCE, instance_id="1").split(".")[1]
    _refused(ca, f"{header}.{other}.{signature}", "invalid token signature")
    # refused after the signature: a claim check spends nothing either
    _refused(ca, google.identity_token(AUDIENCE, project_id="elsewhere"), "project not allowed")
    assert _sign(ca, google.identity_token(AUDIENCE)).status_code == 201


def test_an_unknown_kid_is_refused(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca()
    token = google.identity_token(AUDIENCE)
    kid = google.signer.kid.encode()
    header = b64url_decode(token.split(".")[0]).replace(kid, b"rotated-away")
    _refused(ca, ".".join([b64url_encode(header), *token.split(".")[1:]]),
             "no Google key 'rotated-away'")


def test_only_rs256(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca()
    token = google.identity_token(AUDIENCE)
    header = b64url_decode(token.split(".")[0]).replace(b"RS256", b"PS256")
    _refused(ca, ".".join([b64url_encode(header), *token.split(".")[1:]]), "RS256")


@pytest.mark.parametrize(("options", "changes", "reason"), [
    ({"projectIDs": ["prod", "stepca-prod"]}, {}, "project not allowed"),
    ({"serviceAccounts": ["other@stepca-test.iam.gserviceaccount.com"]}, {},
     "service account not allowed"),
    # an email Google does not vouch for is no service account
    ({"serviceAccounts": ["web@stepca-test.iam.gserviceaccount.com"]},
     {"claims": {"email_verified": False}}, "service account not allowed"),
    ({}, {"aud": "https://127.0.0.1:9000/1.0/sign#gcp/another"}, "no provisioner"),
    ({}, {"aud": "https://ca.elsewhere.example/1.0/sign#gcp/google"}, "wrong audience"),
    ({}, {"aud": "https://127.0.0.1:9000/1.0/revoke#gcp/google"}, "wrong audience"),
    ({}, {"claims": {"iss": "https://evil.example"}}, "wrong issuer"),
    ({}, {"instance_name": None}, "instance_name"),
    ({"instanceAge": "1h"}, {"instance_creation_timestamp": int(time.time()) - 7200},
     "older than instanceAge"),
])
def test_refused(make_ca: MakeCA, google: Google, options: dict[str, Any],
                 changes: dict[str, Any], reason: str) -> None:
    ca = make_ca(**options)
    _refused(ca, google.identity_token(changes.pop("aud", AUDIENCE), **changes), reason)


@pytest.mark.parametrize("options", [
    {"projectIDs": ["stepca-test"]},
    {"serviceAccounts": ["web@stepca-test.iam.gserviceaccount.com"]},
    {"serviceAccounts": ["104270000000000000001"]},  # the account's unique id (sub)
    {"instanceAge": "1h"},
    {},
])
def test_allowed(make_ca: MakeCA, google: Google, options: dict[str, Any]) -> None:
    ca = make_ca(**options)
    assert _sign(ca, google.identity_token(AUDIENCE)).status_code == 201


def test_an_expired_identity_is_refused(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca()
    _refused(ca, google.identity_token(AUDIENCE, issued_at=int(time.time()) - 3 * 3600), "expired")


def test_disable_custom_sans_gives_the_names_google_vouches_for(make_ca: MakeCA,
                                                                google: Google) -> None:
    ca = make_ca(disableCustomSANs=True, disableTrustOnFirstUse=True)
    names = ["web-1.c.stepca-test.internal", "web-1.europe-west1-b.c.stepca-test.internal"]
    for subject, sans in (("evil.example", names), ("web-1", ["evil.example"]),
                          ("web-1", [names[0]]), ("web-1", [*names, "10.0.0.1"])):
        response = _sign(ca, google.identity_token(AUDIENCE), subject, sans)
        assert response.status_code == 403, (subject, sans, response.text)
    # as step-ca's: the CSR asks for both names or none, and the certificate has both
    for age, (subject, sans) in enumerate((("web-1", []), ("web-1", [names[1], names[0]]),
                                           (names[0], names),
                                           (google.instance.instance_id, []))):
        # another iat each: without TOFU the token itself is spent
        token = google.identity_token(AUDIENCE, issued_at=int(time.time()) - age)
        response = _sign(ca, token, subject, sans)
        assert response.status_code == 201, response.text
        cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
        got = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert got.get_values_for_type(x509.DNSName) == names


def test_keys_not_fetched_refuse_with_the_reason(stepca_pki: TestPKI, tmp_path: Path,
                                                 google: Google) -> None:
    # a key endpoint down at start-up: the CA starts, and this provisioner refuses
    entry = {"type": "GCP", "name": NAME, "jwksURL": "http://127.0.0.1:9/certs"}
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=[entry]))
    try:
        keys = _provisioner(ca).keys
        assert keys.wait_fetched(1, timeout=10)
        _refused(ca, google.identity_token(AUDIENCE), "Google's keys are not available yet")
    finally:
        _provisioner(ca).keys.stop()
        ca.close()


@pytest.mark.parametrize(("options", "message"), [
    ({"organizationID": "1234"}, "'organizationID' is not supported"),
    ({"projectIDs": "stepca-test"}, "'projectIDs' must be a list"),
    ({"serviceAccounts": [""]}, "'serviceAccounts' must be a list of non-empty strings"),
    ({"disableCustomSANs": "yes"}, "'disableCustomSANs' must be true or false"),
    ({"instanceAge": "1 day"}, "'instanceAge'"),
    ({"instanceAge": "-1h"}, "cannot be negative"),
    ({"jwksURL": "file:///etc/passwd"}, "not an http(s) URL"),
    ({"projectIDS": ["typo"]}, "unknown key(s) projectIDS"),
    ({"options": {"x509": {"templateFile": "t.tpl"}}}, "'options' (certificate templates)"),
])
def test_invalid_config_is_refused(options: dict[str, Any], message: str) -> None:
    from stepca.provisioner import Audiences, Claims, ProvisionerContext
    from stepca.timeutil import utcnow

    context = ProvisionerContext(audiences=Audiences.for_dns_names(["localhost"]),
                                 claims=Claims(), clock=utcnow, started_at=utcnow())
    with pytest.raises(ValueError) as refused:
        stepca_gcp.GCPProvisioner.from_config({"type": "GCP", "name": NAME, **options},
                                              context=context)
    assert message in str(refused.value)


def test_lists_no_key_url(make_ca: MakeCA) -> None:
    listed = make_ca(projectIDs=["stepca-test"]).client.simulate_get("/provisioners").json
    assert listed["provisioners"] == [{"type": "GCP", "name": NAME,
                                       "projectIDs": ["stepca-test"]}]


def test_revocation_tokens_are_not_supported(make_ca: MakeCA, google: Google) -> None:
    ca = make_ca()
    with pytest.raises(Unauthorized):
        _provisioner(ca).authorize_revoke(parse_unverified(
            google.identity_token("https://127.0.0.1:9000/1.0/revoke#gcp/google")))


@pytest.mark.parametrize("fragment", ["gcp/Google%20Cloud", "gcp/Google Cloud"])
def test_a_name_with_a_space_as_step_escapes_it(stepca_pki: TestPKI, tmp_path: Path,
                                                google: Google, fragment: str) -> None:
    # smallstep's step sends the fragment escaped as Go's url.URL does; step-ca unescapes it
    entry = {"type": "GCP", "name": "Google Cloud", "jwksURL": google.jwks_url}
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=[entry]))
    provisioner = ca.authority.provisioners.by_name("Google Cloud")
    try:
        assert provisioner.keys.wait_fetched(1, timeout=10) and provisioner.keys.ready
        token = google.identity_token(f"https://127.0.0.1:9000/1.0/sign#{fragment}")
        assert _sign(ca, token).status_code == 201
    finally:
        provisioner.keys.stop()
        ca.close()
