"""The Azure provisioner in an in-process CA: managed identity tokens signed by the metadata
emulator's tenant key (``stepca.testing.cloud.AzureImdsEmulator``, see conftest), whose
discovery document and keys the CA fetches from 127.0.0.1 through ``openidConfigurationURL``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import stepca_azure
from stepca.config import ConfigError
from stepca.errors import TokenAlreadyUsed, Unauthorized
from stepca.jose import b64url_decode, b64url_encode, parse_unverified
from stepca.provisioner import Audiences, Claims, ProvisionerContext
from stepca.testing import TestCA, TestPKI, make_csr
from stepca.testing.cloud import AzureImdsEmulator, SigningKey
from stepca.timeutil import utcnow
from stepca.x509util import ProvisionerExtension

NAME = "azure"
RESOURCE = "https://management.azure.com/"

MakeCA = Callable[..., TestCA]
Azure = AzureImdsEmulator


def _entry(azure: Azure, **options: Any) -> dict[str, Any]:
    return {"type": "Azure", "name": NAME, "tenantID": azure.instance.tenant_id,
            "openidConfigurationURL": azure.discovery_url(), **options}


def _provisioner(ca: TestCA, name: str = NAME) -> Any:
    return ca.authority.provisioners.by_name(name)


@pytest.fixture
def make_ca(stepca_pki: TestPKI, tmp_path: Path, azure: Azure) -> Iterator[MakeCA]:
    made: list[TestCA] = []

    def make(*, ready: bool = True, **options: Any) -> TestCA:
        path = stepca_pki.config(tmp_path / str(len(made)), provisioners=[{
            **_entry(azure), **options}])
        ca = TestCA(path)
        made.append(ca)
        provider = _provisioner(ca).provider
        assert provider.wait_fetched(timeout=10)
        assert provider.ready or not ready
        return ca

    yield make
    for ca in made:
        _provisioner(ca).provider.stop()
        ca.close()


def _sign(ca: TestCA, token: str, subject: str = "vm-1.internal",
          sans: list[str] | None = None) -> Any:
    return ca.sign(make_csr(subject, sans)[0], token)


def _refused(ca: TestCA, token: str, reason: str, status: int = 401, **csr: Any) -> None:
    before = ca.rows()
    response = _sign(ca, token, **csr)
    assert response.status_code == status, response.text
    assert reason in response.json["message"]
    assert ca.rows() == before


def _tofu_id(azure: Azure) -> str:
    return hashlib.sha256(azure.instance.mirid.encode()).hexdigest()


def _nothing_spent(ca: TestCA, azure: Azure) -> None:
    # the VM's one certificate is still to be had: its id can be spent now
    ca.authority.certificates.spend_token(_tofu_id(azure))


def _with_header(token: str, old: bytes, new: bytes) -> str:
    header, *rest = token.split(".")
    return ".".join([b64url_encode(b64url_decode(header).replace(old, new)), *rest])


def test_issues_for_a_tenant_signed_identity(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca()
    response = _sign(ca, azure.access_token(RESOURCE), "vm-1.internal",
                     ["vm-1.internal", "10.1.2.3"])
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    # without disableCustomSANs the names are the CSR's, as step-ca's
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["vm-1.internal", "10.1.2.3"]
    extension = ProvisionerExtension.from_certificate(cert)
    assert extension is not None
    assert (extension.type_name, extension.name, extension.credential_id,
            list(extension.key_values)) == ("Azure", NAME, azure.instance.tenant_id, [])
    assert ca.rows()[:2] == (1, 1)


def test_one_certificate_per_vm(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca()
    assert _sign(ca, azure.access_token(RESOURCE)).status_code == 201
    before = ca.rows()
    again = _sign(ca, azure.access_token(RESOURCE, issued_at=int(time.time()) - 5))
    assert again.status_code == 401 and "already used" in again.json["message"]
    assert ca.rows() == before
    # the spent id is step-ca's: sha256(xms_mirid); another VM has its own
    with pytest.raises(TokenAlreadyUsed):
        ca.authority.certificates.spend_token(_tofu_id(azure))
    assert _sign(ca, azure.access_token(RESOURCE, vm_name="vm-2")).status_code == 201


def test_a_user_assigned_identity_is_one_identity(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca(disableCustomSANs=True)
    mirid = (f"/subscriptions/{azure.instance.subscription_id}/resourceGroups/stepca-rg"
             "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web-identity")
    token = azure.signer.sign_jwt({**parse_unverified(azure.access_token(RESOURCE)).claims,
                                   "xms_mirid": mirid})
    response = _sign(ca, token, "web-identity", [])
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web-identity"]


def test_without_trust_on_first_use_nothing_is_spent(make_ca: MakeCA, azure: Azure) -> None:
    # as step-ca's: Azure hands out the same token for a day, so it may be used again
    ca = make_ca(disableTrustOnFirstUse=True)
    token = azure.access_token(RESOURCE)
    assert _sign(ca, token).status_code == 201
    assert _sign(ca, token).status_code == 201
    assert ca.rows()[:2] == (2, 0)
    _nothing_spent(ca, azure)


def test_a_forged_identity_spends_nothing(make_ca: MakeCA, azure: Azure) -> None:
    # Stricter than step-ca: a forged token cannot burn the VM's one certificate.
    ca = make_ca()
    azure.forger = SigningKey("not Microsoft")  # under the tenant's kid
    _refused(ca, azure.access_token(RESOURCE), "invalid token signature")
    azure.forger = None
    header, _, signature = azure.access_token(RESOURCE).split(".")
    other = azure.access_token(RESOURCE, vm_name="vm-9").split(".")[1]
    _refused(ca, f"{header}.{other}.{signature}", "invalid token signature")
    _nothing_spent(ca, azure)


def test_a_refused_claim_spends_nothing(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca(resourceGroups=["stepca-rg"])
    _refused(ca, azure.access_token(RESOURCE, resource_group="other-rg"),
             "resource group not allowed")
    assert _sign(ca, azure.access_token(RESOURCE)).status_code == 201


def test_an_unknown_kid_is_refused(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca()
    token = _with_header(azure.access_token(RESOURCE), azure.signer.kid.encode(), b"rotated")
    _refused(ca, token, "no key 'rotated' in the Azure tenant's keys")
    _nothing_spent(ca, azure)


@pytest.mark.parametrize(("alg", "reason"), [
    (b"none", "RS256 with a kid"), (b"HS256", "RS256 with a kid"), (b"PS256", "RS256")])
def test_only_rs256(make_ca: MakeCA, azure: Azure, alg: bytes, reason: str) -> None:
    ca = make_ca()
    token = _with_header(azure.access_token(RESOURCE), b"RS256", alg)
    if alg == b"none":
        token = token.rpartition(".")[0] + "."
    _refused(ca, token, reason)
    _nothing_spent(ca, azure)


def _claims(azure: Azure, **changes: Any) -> str:
    """A token signed by the tenant's key with ``changes`` to its claims (None removes)."""
    claims = {**parse_unverified(azure.access_token(RESOURCE)).claims, **changes}
    return azure.signer.sign_jwt({k: v for k, v in claims.items() if v is not None})


@dataclass(frozen=True)
class FromNow:
    """A time claim that many seconds from when the test runs (not from when it was
    collected: the suite runs for minutes)."""

    seconds: int

    def at(self) -> int:
        return int(time.time()) + self.seconds


@pytest.mark.parametrize(("options", "changes", "reason"), [
    ({}, {"iss": "https://sts.windows.net/another-tenant/"}, "wrong issuer"),
    ({}, {"aud": "https://vault.azure.net"}, "wrong audience"),
    ({"audience": "https://management.usgovcloudapi.net/"}, {}, "wrong audience"),
    ({}, {"exp": FromNow(-120)}, "token has expired"),
    ({}, {"exp": None}, "exp is required"),
    ({}, {"exp": "tomorrow"}, "exp is not a number"),
    ({}, {"nbf": FromNow(600)}, "not yet valid"),
    ({}, {"iat": FromNow(600)}, "issued in the future"),
    ({}, {"xms_mirid": None}, "xms_mirid"),
    ({}, {"xms_mirid": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage"
                       "/storageAccounts/x"}, "xms_mirid"),
    ({}, {"xms_mirid": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute"
                       "/virtualMachines/vm-1\n"}, "xms_mirid"),
    ({}, {"xms_mirid": "/subscriptions/s/resourceGroups/g/providers/MicrosoftXCompute"
                       "/virtualMachines/vm-1"}, "xms_mirid"),
    ({}, {"xms_mirid": 7}, "xms_mirid"),
    ({"resourceGroups": ["prod"]}, {}, "resource group not allowed"),
    ({"subscriptionIDs": ["00000000-0000-0000-0000-000000000000"]}, {},
     "subscription id not allowed"),
    ({"objectIDs": ["00000000-0000-0000-0000-000000000000"]}, {},
     "identity object id (oid) not allowed"),
    ({"objectIDs": ["2cf5e7a4-7aa7-4c2f-9e3b-5c0b0e8c9a11"]}, {"oid": None},
     "identity object id (oid) not allowed"),
])
def test_refused(make_ca: MakeCA, azure: Azure, options: dict[str, Any],
                 changes: dict[str, Any], reason: str) -> None:
    ca = make_ca(**options)
    changes = {k: v.at() if isinstance(v, FromNow) else v for k, v in changes.items()}
    _refused(ca, _claims(azure, **changes), reason)
    _nothing_spent(ca, azure)


def test_another_tenant_finds_no_provisioner(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca()
    _refused(ca, azure.access_token(RESOURCE, tenant_id="another-tenant"), "no provisioner")


def test_a_tid_that_names_the_tenant_but_is_not_it_is_refused(make_ca: MakeCA,
                                                               azure: Azure) -> None:
    # found by its tid, but another tid in a list cannot pass for the tenant
    ca = make_ca()
    provisioner = _provisioner(ca)
    token = parse_unverified(_claims(azure, tid=azure.instance.tenant_id.upper()))
    with pytest.raises(Unauthorized, match=r"wrong tenant id \(tid\)"):
        provisioner.authorize_sign(token)


@pytest.mark.parametrize("options", [
    {"resourceGroups": ["stepca-rg"]},
    {"subscriptionIDs": ["dc760a01-2886-4a84-9abc-f3508e0f2f3f"]},
    {"objectIDs": ["2cf5e7a4-7aa7-4c2f-9e3b-5c0b0e8c9a11"]},
    {"audience": ""},  # empty is the default, as step-ca's
    {},
])
def test_allowed(make_ca: MakeCA, azure: Azure, options: dict[str, Any]) -> None:
    ca = make_ca(**options)
    assert _sign(ca, azure.access_token(RESOURCE)).status_code == 201


def test_a_mirid_in_other_case_is_read_as_step_ca_reads_it(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca(resourceGroups=["stepca-rg"], disableCustomSANs=True)
    mirid = azure.instance.mirid.upper().replace("STEPCA-RG", "stepca-rg").replace(
        "VM-1", "vm-1")
    response = _sign(ca, _claims(azure, xms_mirid=mirid), "vm-1", [])
    assert response.status_code == 201, response.text


def test_disable_custom_sans_gives_the_name_azure_vouches_for(make_ca: MakeCA,
                                                              azure: Azure) -> None:
    ca = make_ca(disableCustomSANs=True, disableTrustOnFirstUse=True)
    for subject, sans in (("evil.example", ["vm-1"]), ("vm-1", ["evil.example"]),
                          ("vm-1", ["vm-1", "10.0.0.1"]), ("vm-1", ["vm-1", "a@vm-1"]),
                          ("vm-1", ["vm-1", "spiffe://vm-1"]), ("vm-1.internal", [])):
        response = _sign(ca, azure.access_token(RESOURCE), subject, sans)
        assert response.status_code == 403, (subject, sans, response.text)
    assert ca.rows()[:2] == (0, 0)
    for subject, sans in (("vm-1", []), ("vm-1", ["vm-1"]), ("", ["vm-1"])):
        response = _sign(ca, azure.access_token(RESOURCE), subject, sans)
        assert response.status_code == 201, response.text
        cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
        got = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert got.get_values_for_type(x509.DNSName) == ["vm-1"]
        assert got.get_values_for_type(x509.IPAddress) == []


def test_a_tenant_that_cannot_be_discovered_refuses_with_the_reason(
        make_ca: MakeCA, azure: Azure) -> None:
    # a discovery endpoint down at start-up: the CA starts, and this provisioner refuses
    down = "http://127.0.0.1:9/tenant/.well-known/openid-configuration"
    ca = make_ca(ready=False, openidConfigurationURL=down)
    _refused(ca, azure.access_token(RESOURCE),
             f"the Azure tenant's keys are not available yet: provisioner '{NAME}': "
             f"cannot fetch {down}: ")
    _nothing_spent(ca, azure)


def test_keys_that_cannot_be_fetched_refuse_with_the_reason(make_ca: MakeCA, azure: Azure,
                                                             monkeypatch: Any) -> None:
    monkeypatch.setattr(type(azure), "jwks_url", property(lambda e: "http://127.0.0.1:9/keys"))
    ca = make_ca(ready=False)
    _refused(ca, azure.access_token(RESOURCE),
             f"provisioner '{NAME}': cannot fetch http://127.0.0.1:9/keys: ")


def test_the_tenants_keys_are_discovered(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca()
    paths = [r.path for r in azure.requests]
    assert paths == [f"/{azure.instance.tenant_id}/.well-known/openid-configuration",
                     "/common/discovery/keys"]
    assert _provisioner(ca).provider.issuer == azure.instance.issuer


def test_the_default_discovery_url_is_microsofts(azure: Azure) -> None:
    provisioner = _built({"tenantID": "contoso.onmicrosoft.com"})
    try:
        assert provisioner.provider.discovery.url == (
            "https://login.microsoftonline.com/contoso.onmicrosoft.com"
            "/.well-known/openid-configuration")
    finally:
        provisioner.provider.stop()


def _built(options: dict[str, Any]) -> Any:
    context = ProvisionerContext(audiences=Audiences.for_dns_names(["localhost"]),
                                 claims=Claims(), clock=utcnow, started_at=utcnow())
    return stepca_azure.AzureProvisioner.from_config({"type": "Azure", "name": NAME, **options},
                                                     context=context)


@pytest.mark.parametrize(("options", "message"), [
    ({}, "'tenantID' is required"),
    ({"tenantID": ""}, "'tenantID' is required"),
    ({"tenantID": ["t"]}, "'tenantID' must be a non-empty string"),
    ({"tenantID": "t", "audience": 5}, "'audience' must be a non-empty string"),
    ({"tenantID": "t", "resourceGroups": "stepca-rg"}, "'resourceGroups' must be a list"),
    ({"tenantID": "t", "subscriptionIDs": [""]}, "'subscriptionIDs' must be a list"),
    ({"tenantID": "t", "objectIDs": [1]}, "'objectIDs' must be a list of non-empty strings"),
    ({"tenantID": "t", "disableCustomSANs": "yes"}, "'disableCustomSANs' must be true or false"),
    ({"tenantID": "t", "disableTrustOnFirstUse": 1},
     "'disableTrustOnFirstUse' must be true or false"),
    ({"tenantID": "t", "instanceAge": "1h"}, "'instanceAge' is not supported"),
    ({"tenantID": "t", "openidConfigurationURL": "file:///etc/passwd"}, "not an http(s) URL"),
    ({"tenantID": "t", "resourceGroup": ["typo"]}, "unknown key(s) resourceGroup"),
    ({"tenantID": "t", "options": {"x509": {"templateFile": "t.tpl"}}},
     "'options' (certificate templates)"),
    ({"tenantID": "t", "claims": {"maxTLSCertDuration": "1m"}}, "claims"),
])
def test_invalid_config_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        _built(options)
    assert message in str(refused.value)


def test_two_provisioners_for_one_tenant_are_refused(stepca_pki: TestPKI, tmp_path: Path,
                                                      azure: Azure) -> None:
    # as step-ca's: a token could only ever find the first
    entries = [_entry(azure), {**_entry(azure), "name": "azure-2"}]
    with pytest.raises(ConfigError, match="provisioners 'azure' and 'azure-2' have the same "
                                          "token identifier"):
        TestCA(stepca_pki.config(tmp_path, provisioners=entries))


def test_lists_no_discovery_url(make_ca: MakeCA, azure: Azure) -> None:
    listed = make_ca(resourceGroups=["stepca-rg"]).client.simulate_get("/provisioners").json
    assert listed["provisioners"] == [{"type": "Azure", "name": NAME,
                                       "tenantID": azure.instance.tenant_id,
                                       "resourceGroups": ["stepca-rg"]}]


def test_revocation_tokens_are_not_supported(make_ca: MakeCA, azure: Azure) -> None:
    ca = make_ca()
    with pytest.raises(Unauthorized):
        _provisioner(ca).authorize_revoke(parse_unverified(azure.access_token(RESOURCE)))
