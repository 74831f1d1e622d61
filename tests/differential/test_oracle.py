"""The same requests to smallstep's step-ca 0.19 and to ours, on the same PKI (theirs, then
ours): their answer is the truth. Each case is one row of ``CASES``; two tests read every row,
one comparing what a client acts on (status, Content-Type, JSON keys and values, certificate
shapes), one comparing how the body is laid out (spacing, final newline).

A known difference that another change is closing is an ``xfail(strict=True)`` naming it; a
deliberate one documented in docs/compatibility.md is a named ``Documented`` exception that
states what we answer instead."""

from __future__ import annotations

import copy
import ipaddress
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stepca.testing.reference import Answer, Endpoint, answer_view, body_layout, certificate_shape
from stepca.timeutil import utcnow

pytestmark = pytest.mark.e2e

UNKNOWN_FINGERPRINT = "ab" * 32


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    body: Any = None  # JSON, sent encoded; bytes are sent as they are
    client_cert: tuple[Path, Path] | None = None


@dataclass
class Shared:
    """What both servers must get alike for one case (the same CSR, the same key), and a
    folder for files."""

    work: Path
    values: dict[str, Any] = field(default_factory=dict)

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self.values:
            self.values[name] = make()
        return self.values[name]


@dataclass(frozen=True)
class Documented:
    """A deliberate difference documented in docs/compatibility.md: ``expect`` turns their
    answer's view into the one we give instead."""

    where: str
    expect: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
    layout: bytes | None = None  # the layout we send instead, when it is not theirs


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Endpoint, Shared], Request]
    answer_differs: tuple[str, ...] = ()  # why the answers differ today (xfail)
    layout_differs: tuple[str, ...] = ()  # why the bodies' layouts differ (xfail)
    documented: Documented | None = None


def ask(endpoint: Endpoint, case: Case, shared: Shared) -> Answer:
    request = case.build(endpoint, shared)
    body = request.body
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return endpoint.request(request.method, request.target, body,
                            client_cert=request.client_cert)


# -- building requests ------------------------------------------------------------------------

def get(target: str, method: str = "GET") -> Callable[[Endpoint, Shared], Request]:
    return lambda endpoint, shared: Request(method, target)


def post(target: str, body: Any) -> Callable[[Endpoint, Shared], Request]:
    return lambda endpoint, shared: Request("POST", target, body)


def csr_pem(key: Any, subject: str, names: list[x509.GeneralName]) -> str:
    """A CSR with its SANs in exactly the given order."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(name) for name in names]


MIXED_NAMES: list[x509.GeneralName] = [
    x509.UniformResourceIdentifier("spiffe://localhost/mixed"),
    x509.IPAddress(ipaddress.ip_address("10.0.0.7")),
    x509.RFC822Name("mixed@localhost"),
    x509.DNSName("mixed.localhost"),
    x509.DNSName("a.mixed.localhost"),
]


def key_for(shared: Shared) -> Any:
    return shared.once("key", lambda: ec.generate_private_key(ec.SECP256R1()))


def sign_request(subject: str, names: list[x509.GeneralName], *, token_sans: list[str] | None
                 = None, **token: Any) -> Callable[[Endpoint, Shared], Request]:
    """POST /1.0/sign with one CSR shared by both servers and a token for each."""
    def build(endpoint: Endpoint, shared: Shared) -> Request:
        csr = shared.once("csr", lambda: csr_pem(key_for(shared), subject, names))
        sans = token_sans if token_sans is not None else [str(name.value) for name in names]
        return Request("POST", "/1.0/sign",
                       {"csr": csr, "ott": endpoint.token(subject, sans=sans, **token)})
    return build


def sign_with_token(ott: str) -> Callable[[Endpoint, Shared], Request]:
    def build(endpoint: Endpoint, shared: Shared) -> Request:
        csr = shared.once("csr", lambda: csr_pem(key_for(shared), "tok.localhost",
                                                 dns("tok.localhost")))
        return Request("POST", "/1.0/sign", {"csr": csr, "ott": ott})
    return build


def token_reused(endpoint: Endpoint, shared: Shared) -> Request:
    subject = "reuse.localhost"
    csr = shared.once("csr", lambda: csr_pem(key_for(shared), subject, dns(subject)))
    body = {"csr": csr, "ott": endpoint.token(subject)}
    first = endpoint.request("POST", "/1.0/sign", json.dumps(body).encode())
    assert first.status == 201, first
    return Request("POST", "/1.0/sign", body)


def malformed_csr(endpoint: Endpoint, shared: Shared) -> Request:
    return Request("POST", "/1.0/sign", {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                                "-----END CERTIFICATE REQUEST-----\n",
                                         "ott": endpoint.token("bad.localhost")})


def issue(endpoint: Endpoint, shared: Shared, subject: str) -> tuple[x509.Certificate, Path,
                                                                       Path]:
    """A certificate from ``endpoint`` for a fresh key, written out for mTLS."""
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"csr": csr_pem(key, subject, dns(subject)), "ott": endpoint.token(subject)}
    answer = endpoint.request("POST", "/1.0/sign", json.dumps(body).encode())
    assert answer.status == 201, answer
    chain = answer.json()["certChain"]
    folder = shared.work / endpoint.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chain.pem").write_text("".join(chain))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    certificate = x509.load_pem_x509_certificate(chain[0].encode())
    return certificate, folder / "chain.pem", folder / "key.pem"


def renew_by_mtls(endpoint: Endpoint, shared: Shared) -> Request:
    _, chain, key = issue(endpoint, shared, "renew.localhost")
    return Request("POST", "/1.0/renew", client_cert=(chain, key))


def revoke(reason_code: int, *, unknown_serial: bool = False, passive: bool = True
           ) -> Callable[[Endpoint, Shared], Request]:
    """POST /1.0/revoke with a revocation token for a certificate just issued, or for a
    serial no CA issued (fresh per case: the servers remember revocations)."""
    def build(endpoint: Endpoint, shared: Shared) -> Request:
        if unknown_serial:
            number = shared.once("serial", lambda: str(secrets.randbits(63)))
        else:
            number = str(issue(endpoint, shared, "revoke.localhost")[0].serial_number)
        return Request("POST", "/1.0/revoke",
                       {"serial": number, "ott": endpoint.token(number, route="revoke"),
                        "reasonCode": reason_code, "passive": passive})
    return build


def revoke_by_mtls(endpoint: Endpoint, shared: Shared) -> Request:
    certificate, chain, key = issue(endpoint, shared, "mtls-revoke.localhost")
    return Request("POST", "/1.0/revoke", {"serial": str(certificate.serial_number),
                                           "reasonCode": 1, "passive": True},
                   client_cert=(chain, key))


def root_by_fingerprint(endpoint: Endpoint, shared: Shared) -> Request:
    return Request("GET", f"/root/{endpoint.pki.fingerprint}")


def encrypted_key(endpoint: Endpoint, shared: Shared) -> Request:
    return Request("GET", f"/provisioners/{endpoint.pki.provisioner_kid}/encrypted-key")


def root_by_upper_case_fingerprint(endpoint: Endpoint, shared: Shared) -> Request:
    return Request("GET", f"/root/{endpoint.pki.fingerprint.upper()}")


# -- documented differences -------------------------------------------------------------------

def _explained_401(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """step-ca's 401 says only "Please see the certificate authority logs"; ours says why."""
    expected = copy.deepcopy(theirs)
    if theirs["status"] == 401 and ours.get("json", {}).get("message", "").startswith(
            "The request lacked necessary authorization to be completed: "):
        expected["json"]["message"] = ours["json"]["message"]
    return expected


EXPLAINED_401 = Documented("compatibility.md, Stricter than step-ca: 401 answers say why",
                           _explained_401)


def _own_message(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The same status and keys; the message is ours."""
    expected = copy.deepcopy(theirs)
    expected["json"]["message"] = ours.get("json", {}).get("message")
    return expected


def _own_version(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    expected = copy.deepcopy(theirs)
    expected["json"]["version"] = ours.get("json", {}).get("version")
    return expected


OWN_VERSION = Documented("compatibility.md, Different defaults: GET /version reports "
                         "stepca's version", _own_version)
CSR_NAMED = Documented("compatibility.md, Different defaults: a CSR that is not PEM gets "
                       "400 'invalid csr'", _own_message)


def _unknown_serial_is_404(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """step-ca records a revocation for any serial; we answer 404 (the message is ours)."""
    if theirs != {"status": 200, "content_type": "application/json", "json": {"status": "ok"}}:
        return theirs
    return {"status": 404, "content_type": "application/json",
            "json": {"status": 404, "message": ours.get("json", {}).get("message")}}


ONLY_OUR_SERIALS = Documented("compatibility.md, Stricter than step-ca: only serials this CA "
                              "issued may be revoked", _unknown_serial_is_404,
                              layout=b'{"":0,"":""}\n')  # step-ca's error body


def _passive_only_is_400(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """step-ca answers 501 to a non-passive revocation; we refuse it with 400."""
    if theirs["status"] != 501:
        return theirs
    return {"status": 400, "content_type": theirs["content_type"],
            "json": {"status": 400, "message": ours.get("json", {}).get("message")}}


PASSIVE_ONLY = Documented("compatibility.md, Different defaults: POST /revoke with "
                          '"passive": false is refused with 400', _passive_only_is_400)


CASES = [
    Case("health", get("/health")),
    Case("health-1.0", get("/1.0/health")),
    Case("version", get("/version"), documented=OWN_VERSION),
    Case("roots", get("/roots")),
    Case("root-by-fingerprint", root_by_fingerprint),
    Case("root-unknown-fingerprint", get(f"/root/{UNKNOWN_FINGERPRINT}")),
    Case("provisioners", get("/provisioners")),
    Case("provisioners-limit-1", get("/provisioners?limit=1")),
    Case("provisioners-bad-limit", get("/provisioners?limit=abc")),
    Case("provisioners-bad-cursor", get("/provisioners?cursor=zzz")),
    Case("federation", get("/federation")),
    Case("root-upper-case-fingerprint", root_by_upper_case_fingerprint),
    Case("health-head", get("/health", method="HEAD")),
    Case("encrypted-key", encrypted_key),
    Case("encrypted-key-unknown-kid", get("/provisioners/no-such-kid/encrypted-key")),
    Case("sign", sign_request("foo.localhost", dns("foo.localhost"))),
    Case("sign-mixed-sans", sign_request("mixed.localhost", MIXED_NAMES)),
    Case("sign-bad-token", sign_with_token("not.a.token"), documented=EXPLAINED_401),
    Case("sign-expired-token", sign_request("old.localhost", dns("old.localhost"),
                                            now=utcnow() - timedelta(hours=1)),
         documented=EXPLAINED_401),
    Case("sign-wrong-audience", sign_request("aud.localhost", dns("aud.localhost"),
                                             audience="https://ca.example.com/1.0/sign"),
         documented=EXPLAINED_401),
    Case("sign-san-not-authorized",
         sign_request("zeta.localhost", dns("zeta.localhost", "evil.localhost", "a.localhost"),
                      token_sans=["zeta.localhost"])),
    Case("sign-token-reused", token_reused, documented=EXPLAINED_401),
    Case("sign-malformed-csr", malformed_csr, documented=CSR_NAMED),
    Case("sign-empty-object", post("/1.0/sign", {})),
    Case("sign-not-json", post("/1.0/sign", b"not json")),
    Case("renew-without-certificate", post("/1.0/renew", None)),
    Case("renew-mtls", renew_by_mtls),
    Case("revoke-reason-0", revoke(0)),
    Case("revoke-reason-7", revoke(7)),
    Case("revoke-reason-10", revoke(10)),
    Case("revoke-reason-11", revoke(11)),
    Case("revoke-reason-minus-1", revoke(-1)),
    Case("revoke-unknown-serial", revoke(0, unknown_serial=True), documented=ONLY_OUR_SERIALS),
    Case("revoke-not-passive", revoke(1, passive=False), documented=PASSIVE_ONLY),
    Case("revoke-mtls", revoke_by_mtls),
    Case("revoke-missing-serial", post("/1.0/revoke", {"reasonCode": 1, "passive": True})),
    Case("unknown-route", get("/no-such-route")),
    *(Case(name, get(target))
      for name, target in [("health-trailing-slash", "/health/"),
                           ("health-double-slash", "//health"),
                           ("health-encoded-slash", "/health%2F"),
                           ("roots-trailing-slash", "/roots/")]),
    Case("health-wrong-method", get("/health", method="POST")),
    Case("sign-wrong-method", get("/1.0/sign")),
]


def differs(reasons: tuple[str, ...]) -> list[pytest.MarkDecorator]:
    """An answer that differs today, for these reasons: a strict xfail (none when none)."""
    return [pytest.mark.xfail(strict=True, reason="; ".join(reasons))] if reasons else []


def _params(reasons_of: Callable[[Case], tuple[str, ...]]) -> list[Any]:
    return [pytest.param(case, id=case.id, marks=differs(reasons_of(case))) for case in CASES]


@pytest.mark.parametrize("case", _params(lambda case: case.answer_differs))
def test_same_answer(pair: Any, case: Case, tmp_path: Path) -> None:
    """Status, Content-Type, JSON keys and values, and the shape of every certificate."""
    shared = Shared(tmp_path)
    theirs = answer_view(ask(pair.theirs, case, shared))
    ours = answer_view(ask(pair.ours, case, shared))
    if case.documented:
        theirs = case.documented.expect(theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("case", _params(lambda case: case.layout_differs))
def test_same_body_layout(pair: Any, case: Case, tmp_path: Path) -> None:
    """How the body is written: spacing, key count and nesting, the final newline."""
    shared = Shared(tmp_path)
    theirs = body_layout(ask(pair.theirs, case, shared).body)
    ours = body_layout(ask(pair.ours, case, shared).body)
    if case.documented and case.documented.layout is not None:
        theirs = case.documented.layout
    assert ours == theirs


@pytest.mark.parametrize("name", ["root_ca.crt", "intermediate_ca.crt"])
def test_same_pki_shape(their_pki: Any, our_pki: Any, name: str) -> None:
    """Our ``step ca init`` writes the certificates smallstep's ``pki`` package writes."""
    theirs, ours = (x509.load_pem_x509_certificate((pki.steppath / "certs" / name).read_bytes())
                    for pki in (their_pki, our_pki))
    assert certificate_shape(ours) == certificate_shape(theirs)
