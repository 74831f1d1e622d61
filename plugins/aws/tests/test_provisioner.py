"""The AWS provisioner in an in-process CA: identity documents signed by the metadata
emulator's key (``stepca.testing.cloud.AwsImdsEmulator``, see conftest), whose certificate the
CA trusts through ``iidRoots``, wrapped in step's HS256 token (conftest's ``wrapper_token``)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

import stepca_aws
from stepca.errors import TokenAlreadyUsed, Unauthorized
from stepca.jose import b64url_decode, b64url_encode, parse_unverified
from stepca.testing import TestCA, TestPKI, make_csr
from stepca.testing.cloud import AwsImdsEmulator, SigningKey
from stepca.x509util import ProvisionerExtension
from stepca_aws.provisioner import aws_certificates

NAME = "amazon"
AUDIENCE = f"https://127.0.0.1:9000/1.0/sign#aws/{NAME}"
DNS_NAME = "ip-10-0-1-17.us-east-1.compute.internal"

MakeCA = Callable[..., TestCA]
Token = Callable[..., str]


@pytest.fixture
def make_ca(stepca_pki: TestPKI, tmp_path: Path, iid_roots: Path) -> Iterator[MakeCA]:
    made: list[TestCA] = []

    def make(**options: Any) -> TestCA:
        entry = {"type": "AWS", "name": NAME, "iidRoots": str(iid_roots), **options}
        ca = TestCA(stepca_pki.config(tmp_path / str(len(made)), provisioners=[entry]))
        made.append(ca)
        return ca

    yield make
    for ca in made:
        ca.close()


@pytest.fixture
def token(imds: AwsImdsEmulator, wrapper_token: Token) -> Token:
    """A token for the emulator's instance (``instance`` changes it before signing)."""
    def make(audience: str = AUDIENCE, *, instance: dict[str, Any] | None = None,
             **options: Any) -> str:
        document, signature = imds.identity(**(instance or {}))
        return wrapper_token(document, signature, audience=audience, **options)
    return make


def _sign(ca: TestCA, token: str, subject: str = DNS_NAME,
          sans: list[str] | None = None) -> Any:
    return ca.sign(make_csr(subject, sans)[0], token)


def _refused(ca: TestCA, token: str, reason: str, status: int = 401, **csr: Any) -> None:
    before = ca.rows()
    response = _sign(ca, token, **csr)
    assert response.status_code == status, response.text
    assert reason in response.json["message"], response.json["message"]
    assert ca.rows() == before  # nothing spent, nothing written


def _spent(ca: TestCA, instance_id: str) -> bool:
    unique = hashlib.sha256(f"aws/{NAME}.{instance_id}".encode()).hexdigest()
    try:
        ca.authority.certificates.spend_token(unique)
    except TokenAlreadyUsed:
        return True
    return False


def test_issues_for_an_aws_signed_identity(make_ca: MakeCA, token: Token,
                                           imds: AwsImdsEmulator) -> None:
    ca = make_ca()
    response = _sign(ca, token(subject="web.internal"), "web.internal",
                     ["web.internal", "10.9.8.7"])
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    # without disableCustomSANs the names are the CSR's, as step-ca's
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["web.internal", "10.9.8.7"]
    extension = ProvisionerExtension.from_certificate(cert)
    assert extension is not None
    assert (extension.type, extension.type_name, extension.name, extension.credential_id) == (
        4, "AWS", NAME, "123456789012")
    assert list(extension.key_values) == ["InstanceID", imds.instance.instance_id]
    assert ca.rows()[:2] == (1, 1)


def test_one_certificate_per_instance(make_ca: MakeCA, token: Token) -> None:
    ca = make_ca()
    assert _sign(ca, token()).status_code == 201
    before = ca.rows()
    again = _sign(ca, token(now=datetime.now(UTC) - timedelta(seconds=5)))
    assert again.status_code == 401 and "already used" in again.json["message"]
    assert ca.rows() == before
    # the spent id is step-ca's: sha256("aws/<name>.<instance id>")
    assert _sign(ca, token(instance={"instance_id": "i-777"})).status_code == 201
    assert _spent(ca, "i-777")


def test_without_trust_on_first_use_each_token_is_spent(make_ca: MakeCA, token: Token) -> None:
    ca = make_ca(disableTrustOnFirstUse=True)
    first = token()
    assert _sign(ca, first).status_code == 201
    assert _sign(ca, token(now=datetime.now(UTC) - timedelta(seconds=5))).status_code == 201
    _refused(ca, first, "already used")
    assert not _spent(ca, "i-0123456789abcdef0")  # the instance's slot was never the id


def test_a_forged_identity_spends_nothing(make_ca: MakeCA, token: Token,
                                          imds: AwsImdsEmulator) -> None:
    # Stricter than step-ca needs to be here, as for GCP and Azure: nothing is spent before
    # AWS's signature verifies, so a forged document cannot burn the instance's slot.
    ca = make_ca()
    imds.forger = SigningKey("not AWS")
    _refused(ca, token(), "signature does not verify with AWS's certificates")
    imds.forger = None
    assert _sign(ca, token()).status_code == 201


def test_a_document_changed_after_signing_is_refused(make_ca: MakeCA, imds: AwsImdsEmulator,
                                                     wrapper_token: Token) -> None:
    ca = make_ca()
    _, signature = imds.identity()
    other, _ = imds.identity(account_id="999999999999")
    # re-keyed with the genuine signature: the HMAC passes, AWS's signature does not
    _refused(ca, wrapper_token(other, signature, audience=AUDIENCE), "does not verify")
    assert not _spent(ca, "i-0123456789abcdef0")


def test_shipped_certificates_and_iid_roots_replace_each_other(
        stepca_pki: TestPKI, tmp_path: Path, token: Token) -> None:
    # without iidRoots only AWS's certificates count: the emulator's key is not one of them
    entry = {"type": "AWS", "name": NAME}
    ca = TestCA(stepca_pki.config(tmp_path / "aws", provisioners=[entry]))
    try:
        _refused(ca, token(), "does not verify with AWS's certificates")
    finally:
        ca.close()
    # with iidRoots only those count (as step-ca's)
    other = tmp_path / "other.pem"
    other.write_bytes(SigningKey("another").certificate_pem)
    entry = {"type": "AWS", "name": NAME, "iidRoots": str(other)}
    ca = TestCA(stepca_pki.config(tmp_path / "other", provisioners=[entry]))
    try:
        _refused(ca, token(), "does not verify")
    finally:
        ca.close()


def test_the_shipped_aws_certificates_load_and_are_rsa() -> None:
    certificates = aws_certificates()
    assert len(certificates) == 33  # AWS's regions as published, see aws_certificates.pem
    assert all(isinstance(c.public_key(), rsa.RSAPublicKey) for c in certificates)
    assert len({c.public_key().public_numbers() for c in certificates}) > 1


def _with_header(token: str, **changes: Any) -> str:
    header = json.loads(b64url_decode(token.split(".")[0]))
    header.update(changes)
    return ".".join([b64url_encode(json.dumps(header).encode()), *token.split(".")[1:]])


def test_the_wrapper_is_hs256_keyed_with_the_signature(make_ca: MakeCA, token: Token,
                                                       imds: AwsImdsEmulator) -> None:
    ca = make_ca()
    _refused(ca, token(key=b"another key"), "invalid token signature")
    _refused(ca, token(alg="HS384"), "HS256")
    _refused(ca, _with_header(token(), alg="RS256"), "HS256")
    header, payload, _ = _with_header(token(), alg="none").split(".")
    _refused(ca, f"{header}.{payload}.", "HS256")
    # a second spelling of the same HMAC (other trailing bits) is not the same token
    header, payload, mac = token().split(".")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = mac[:-1] + last[last.index(mac[-1]) ^ 1]
    assert b64url_decode(twin) == b64url_decode(mac)
    _refused(ca, f"{header}.{payload}.{twin}", "invalid token signature")
    assert _sign(ca, token()).status_code == 201


@pytest.mark.parametrize(("options", "changes", "reason"), [
    ({"accounts": ["111111111111", "222222222222"]}, {}, "account is not allowed"),
    ({}, {"audience": "https://127.0.0.1:9000/1.0/sign#aws/another"}, "no provisioner"),
    ({}, {"audience": "https://ca.elsewhere.example/1.0/sign#aws/amazon"}, "wrong audience"),
    ({}, {"audience": "https://127.0.0.1:9000/1.0/revoke#aws/amazon"}, "wrong audience"),
    ({}, {"iss": "accounts.google.com"}, "wrong issuer"),
    ({}, {"iss": None}, "wrong issuer"),
    ({}, {"exp": None}, "exp is required"),
    ({}, {"now": datetime.now(UTC) - timedelta(minutes=30)}, "expired"),
    ({}, {"now": datetime.now(UTC) + timedelta(minutes=30)}, "not yet valid"),
    ({}, {"sub": None}, "subject is required"),
    ({}, {"amazon": None}, "amazon claim is missing"),
    ({}, {"instance": {"region": ""}}, "region must be a non-empty string"),
    ({}, {"instance": {"private_ip": "ten.zero"}}, "privateIp is not an IPv4 address"),
    ({"instanceAge": "1h"},
     {"instance": {"pending_time": datetime.now(UTC) - timedelta(hours=2)}},
     "older than instanceAge"),
    ({"disableCustomSANs": True}, {"subject": "evil.example"},
     "the subject must be the instance id"),
])
def test_refused(make_ca: MakeCA, token: Token, options: dict[str, Any],
                 changes: dict[str, Any], reason: str) -> None:
    ca = make_ca(**options)
    subject = changes.get("subject", DNS_NAME)
    _refused(ca, token(changes.pop("audience", AUDIENCE), **changes), reason, subject=subject)
    assert not _spent(ca, "i-0123456789abcdef0")


@pytest.mark.parametrize("options", [
    {"accounts": ["111111111111", "123456789012"]},
    {"instanceAge": "1h"},
    {"disableCustomSANs": True},
    {"imdsVersions": ["v2"]},
    {},
])
def test_allowed(make_ca: MakeCA, token: Token, options: dict[str, Any]) -> None:
    assert _sign(make_ca(**options), token()).status_code == 201


@pytest.mark.parametrize(("instance", "reason"), [
    ({"account_id": "1" * 65}, "accountId must be a non-empty string of at most 64"),
    ({"instance_id": "i-" + "0" * 80}, "instanceId must be a non-empty string of at most 64"),
    ({"image_id": "ami-" + "0" * 5000}, "amazon.document must be base64 of at most 4096"),
])
def test_oversized_documents_are_refused(make_ca: MakeCA, token: Token,
                                         instance: dict[str, Any], reason: str) -> None:
    _refused(make_ca(), token(instance=instance), reason)


def test_an_oversized_or_malformed_signature_is_refused(make_ca: MakeCA, token: Token,
                                                        imds: AwsImdsEmulator) -> None:
    ca = make_ca()
    document, _ = imds.identity()
    big = base64.b64encode(b"\x01" * 1025).decode()
    encoded = base64.b64encode(document).decode()
    _refused(ca, token(amazon={"document": encoded, "signature": big}),
             "amazon.signature must be base64 of at most 1024")
    _refused(ca, token(amazon={"document": encoded, "signature": "not base64!"}),
             "amazon.signature is not base64")
    _refused(ca, token(amazon={"document": 7, "signature": big}), "amazon.document")


def test_disable_custom_sans_gives_the_names_aws_vouches_for(make_ca: MakeCA,
                                                             token: Token) -> None:
    ca = make_ca(disableCustomSANs=True, disableTrustOnFirstUse=True)
    refused = [(DNS_NAME, [DNS_NAME, "evil.example"]), (DNS_NAME, ["10.0.1.18"]),
               (DNS_NAME, [DNS_NAME, "10.0.1.17", "ops@example.com"]),
               (DNS_NAME, ["spiffe://example/web"]), ("10.0.1.17", [DNS_NAME])]
    for subject, sans in refused:
        # the last: the CSR's common name is not the token's subject
        response = _sign(ca, token(subject=DNS_NAME), subject, sans)
        assert response.status_code == 403, (subject, sans, response.text)
    # as step-ca's: the CSR asks for the DNS name and/or the IP, and the certificate has both
    for age, (subject, sans) in enumerate(((DNS_NAME, [DNS_NAME]), ("10.0.1.17", ["10.0.1.17"]),
                                           ("i-0123456789abcdef0", []),
                                           (DNS_NAME, ["10.0.1.17", DNS_NAME]))):
        # another iat each: without TOFU the token itself is spent
        issued = token(subject=subject, now=datetime.now(UTC) - timedelta(seconds=age))
        response = _sign(ca, issued, subject, sans)
        assert response.status_code == 201, (subject, sans, response.text)
        cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
        got = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(n.value) for n in got] == [DNS_NAME, "10.0.1.17"]


def test_the_common_name_is_the_token_subject_or_empty(make_ca: MakeCA, token: Token) -> None:
    ca = make_ca()
    _refused(ca, token(subject="web.internal"), "valid common name", status=403,
             subject="other.internal", sans=["web.internal"])
    response = _sign(ca, token(subject="web.internal"), "", ["web.internal"])
    assert response.status_code == 201, response.text


def _context() -> Any:
    from stepca.provisioner import Audiences, Claims, ProvisionerContext
    from stepca.timeutil import utcnow

    return ProvisionerContext(audiences=Audiences.for_dns_names(["localhost"]),
                              claims=Claims(), clock=utcnow, started_at=utcnow())


def _iid_roots(tmp_path: Path, kind: str) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    path = tmp_path / f"{kind}.pem"
    if kind == "empty":
        path.write_text("no certificates here\n")
    elif kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.mark.parametrize(("options", "message"), [
    ({"accounts": "123456789012"}, "'accounts' must be a list"),
    ({"accounts": [""]}, "'accounts' must be a list of non-empty strings"),
    ({"imdsVersions": "v2"}, "'imdsVersions' must be a list"),
    ({"imdsVersions": ["v2", "v3"]}, "'v3' is not a supported AWS instance metadata service"),
    ({"disableCustomSANs": "yes"}, "'disableCustomSANs' must be true or false"),
    ({"disableTrustOnFirstUse": 1}, "'disableTrustOnFirstUse' must be true or false"),
    ({"instanceAge": "1 day"}, "'instanceAge'"),
    ({"instanceAge": "-1h"}, "cannot be negative"),
    ({"iidRoots": "missing"}, "'iidRoots': cannot read"),
    ({"iidRoots": "empty"}, "holds no PEM certificate"),
    ({"iidRoots": "ec"}, "certificate 1 has no RSA key"),
    ({"iidRoots": ["a.pem"]}, "'iidRoots' must be the path of a PEM file"),
    ({"account": ["typo"]}, "unknown key(s) account"),
    ({"options": {"x509": {"templateFile": "t.tpl"}}}, "'options' (certificate templates)"),
])
def test_invalid_config_is_refused(tmp_path: Path, options: dict[str, Any],
                                   message: str) -> None:
    if options.get("iidRoots") in ("missing", "empty", "ec"):
        options = {"iidRoots": _iid_roots(tmp_path, options["iidRoots"])}
    with pytest.raises(ValueError) as refused:
        stepca_aws.AWSProvisioner.from_config({"type": "AWS", "name": NAME, **options},
                                              context=_context())
    assert message in str(refused.value)


def test_lists_the_imds_versions_its_clients_use(make_ca: MakeCA, iid_roots: Path) -> None:
    listed = make_ca(accounts=["123456789012"]).client.simulate_get("/provisioners").json
    assert listed["provisioners"] == [{"type": "AWS", "name": NAME, "iidRoots": str(iid_roots),
                                       "accounts": ["123456789012"],
                                       "imdsVersions": ["v2", "v1"]}]
    listed = make_ca(imdsVersions=["v2"]).client.simulate_get("/provisioners").json
    assert listed["provisioners"][0]["imdsVersions"] == ["v2"]


def test_revocation_tokens_are_not_supported(make_ca: MakeCA, token: Token) -> None:
    ca = make_ca()
    with pytest.raises(Unauthorized):
        ca.authority.provisioners.by_name(NAME).authorize_revoke(
            parse_unverified(token("https://127.0.0.1:9000/1.0/revoke#aws/amazon")))


@pytest.mark.parametrize("fragment", ["aws/Amazon%20Web%20Services", "aws/Amazon Web Services"])
def test_a_name_with_spaces_as_step_escapes_it(stepca_pki: TestPKI, tmp_path: Path,
                                               iid_roots: Path, token: Token,
                                               fragment: str) -> None:
    # smallstep's step sends the fragment escaped as Go's url.URL does; step-ca unescapes it
    entry = {"type": "AWS", "name": "Amazon Web Services", "iidRoots": str(iid_roots)}
    ca = TestCA(stepca_pki.config(tmp_path, provisioners=[entry]))
    try:
        response = _sign(ca, token(f"https://127.0.0.1:9000/1.0/sign#{fragment}"))
        assert response.status_code == 201, response.text
    finally:
        ca.close()


def test_a_token_signed_for_one_instance_is_not_another(make_ca: MakeCA, token: Token,
                                                        imds: AwsImdsEmulator) -> None:
    # the instance spent is the one in the signed document, whatever the token's jti says
    ca = make_ca()
    imds.instance = replace(imds.instance, instance_id="i-aaaa")
    assert _sign(ca, token(jti=hashlib.sha256(b"aws/amazon.i-bbbb").hexdigest())).status_code == 201
    assert _spent(ca, "i-aaaa") and not _spent(ca, "i-bbbb")


@pytest.mark.parametrize(("document", "reason"), [
    (b"[" * 2000 + b"]" * 2000, "is not JSON"),  # deeper than the parser goes
    (b"\xff{}", "is not JSON"),
    (b'["accountId"]', "is not a JSON object"),
])
def test_a_signed_document_that_is_not_a_json_object_is_refused(
        make_ca: MakeCA, imds: AwsImdsEmulator, wrapper_token: Token, document: bytes,
        reason: str) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = imds.signer.private.sign(document, padding.PKCS1v15(), hashes.SHA256())
    _refused(make_ca(), wrapper_token(document, signature, audience=AUDIENCE), reason)
