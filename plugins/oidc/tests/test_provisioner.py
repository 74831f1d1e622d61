"""The OIDC provisioner in an in-process CA with real ID tokens: panva's certified
``oidc-provider`` on 127.0.0.1 issues them after Debian's headless Chromium signed a test user in
(``stepca.testing.oidc``), and the CA fetches the provider's discovery document and keys from it.

A sign-in costs a browser session, so each user's ID token is fetched once per module and used
with several CAs: each test's CA has its own database, so a token spent in one test is unspent
in the next. Those CAs set ``disableIssuedAtCheck`` (the tokens were issued before them); the
check itself has its own test. Claims a certified provider never issues (another ``azp``, no
``exp``, a two-hour life, ...) come from ``LocalIssuer``, a key of the test's own behind a
discovery document on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest
from cryptography import x509

import stepca_oidc
from stepca.config import ConfigError
from stepca.errors import TokenAlreadyUsed, Unauthorized
from stepca.jose import (
    Token,
    b64url_decode,
    b64url_encode,
    jwk_from_key,
    parse_unverified,
    sign_jwt,
)
from stepca.provisioner import Audiences, Claims, ProvisionerContext
from stepca.testing import TestCA, TestPKI, make_csr
from stepca.testing.oidc import Browser, OpenIDProvider
from stepca.timeutil import utcnow
from stepca.x509util import ProvisionerExtension, generate_key

pytestmark = pytest.mark.e2e

NAME = "oidc"
CLIENT = "local-client"
MakeCA = Callable[..., TestCA]
IdToken = Callable[[str], str]


@pytest.fixture(scope="module")
def other_provider() -> Iterator[OpenIDProvider]:
    """Another issuer with a client of the same id: its tokens are not the first one's."""
    with OpenIDProvider() as running:
        yield running


def sign_in(provider: OpenIDProvider, browser: Browser, login: str) -> str:
    """A fresh ID token for ``login``, through the browser."""
    nonce = secrets.token_urlsafe(24)
    id_token = str(provider.code_flow(browser, provider.user(login), nonce=nonce)["id_token"])
    assert parse_unverified(id_token).claims["nonce"] == nonce
    return id_token


@pytest.fixture(scope="module")
def id_token(provider: OpenIDProvider, browser: Browser) -> IdToken:
    """The module's ID token of a user of ``provider`` (one sign-in per user)."""
    tokens: dict[str, str] = {}

    def token(login: str) -> str:
        if login not in tokens:
            tokens[login] = sign_in(provider, browser, login)
        return tokens[login]

    return token


def _entry(provider: OpenIDProvider, **options: Any) -> dict[str, Any]:
    return {"type": "OIDC", "name": NAME, "clientID": provider.client_id,
            "clientSecret": provider.client_secret,
            "configurationEndpoint": provider.issuer, **options}


def _provisioner(ca: TestCA) -> Any:
    return ca.authority.provisioners.by_name(NAME)


@pytest.fixture
def make_ca(stepca_pki: TestPKI, tmp_path: Path,
            provider: OpenIDProvider) -> Iterator[MakeCA]:
    made: list[TestCA] = []

    def make(*, ready: bool = True, issued_at_check: bool = False,
             clock: Callable[..., Any] | None = None, **options: Any) -> TestCA:
        path = stepca_pki.config(tmp_path / str(len(made)),
                                 authority={"disableIssuedAtCheck": not issued_at_check},
                                 provisioners=[{**_entry(provider), **options}])
        ca = TestCA(path, clock=clock)
        made.append(ca)
        keys = _provisioner(ca).provider
        assert keys.wait_fetched(timeout=30)
        assert keys.ready == ready, keys.discovery.reason
        return ca

    yield make
    for ca in made:
        _provisioner(ca).provider.stop()
        ca.close()


def _sign(ca: TestCA, token: str, subject: str = "mike@example.com",
          sans: list[str] | None = None) -> Any:
    return ca.sign(make_csr(subject, sans)[0], token)


def _refused(ca: TestCA, token: str, reason: str, status: int = 401, **csr: Any) -> None:
    """The request is refused for ``reason`` and nothing is written: no certificate, no spent
    token (``rows`` counts ``used_ott`` too)."""
    before = ca.rows()
    response = _sign(ca, token, **csr)
    assert response.status_code == status, response.text
    assert reason in response.json["message"], response.json["message"]
    assert ca.rows() == before


def _names(response: Any) -> tuple[str, list[str]]:
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (str(cn[0].value) if cn else "", [str(name.value) for name in sans])


def _with_header(token: str, **changes: Any) -> str:
    header, *rest = token.split(".")
    decoded = {**json.loads(b64url_decode(header)), **changes}
    return ".".join([b64url_encode(json.dumps(decoded).encode()), *rest])


# -- what is issued --------------------------------------------------------------------------------

def test_a_user_gets_their_email_and_iss_sub_whatever_the_csr_asks(
        make_ca: MakeCA, provider: OpenIDProvider, browser: Browser) -> None:
    ca = make_ca(issued_at_check=True)  # a fresh sign-in: issued after the CA started
    token = sign_in(provider, browser, "mike")
    mike = provider.user("mike")
    response = _sign(ca, token, "root.example.com",
                     ["root.example.com", "10.0.0.1", "admin@example.com", "spiffe://x/y"])
    assert _names(response) == ("mike@example.com",
                                ["mike@example.com", f"{provider.issuer}#{mike.sub}"])
    cert = x509.load_pem_x509_certificate(response.json["crt"].encode())
    extension = ProvisionerExtension.from_certificate(cert)
    assert extension is not None
    assert (extension.type_name, extension.name, extension.credential_id) == (
        "OIDC", NAME, provider.client_id)
    assert ca.rows()[:2] == (1, 1)
    # the ID token is single use: its nonce was spent with the certificate
    before = ca.rows()
    again = _sign(ca, token)
    assert again.status_code == 401 and "already used" in again.json["message"]
    assert ca.rows() == before
    with pytest.raises(TokenAlreadyUsed):
        ca.authority.certificates.spend_token(parse_unverified(token).claims["nonce"])


def test_an_admin_gets_the_names_the_csr_asks(make_ca: MakeCA, id_token: IdToken) -> None:
    ca = make_ca(admins=["admins"])  # a group of the admin user
    response = _sign(ca, id_token("admin"), "ca.internal", ["ca.internal", "10.0.0.1"])
    assert _names(response) == ("ca.internal", ["ca.internal", "10.0.0.1"])
    assert ca.rows()[:2] == (1, 1)


def test_an_admin_by_email_compares_the_domain_without_case(make_ca: MakeCA,
                                                            id_token: IdToken) -> None:
    ca = make_ca(admins=["mike@EXAMPLE.com"])
    assert _names(_sign(ca, id_token("mike"), "www.example.com")) == (
        "www.example.com", ["www.example.com"])


@pytest.mark.parametrize("admins", [[], ["Admins"], ["admins@example.com"]])
def test_others_get_their_own_names(make_ca: MakeCA, id_token: IdToken,
                                    provider: OpenIDProvider, admins: list[str]) -> None:
    # group names compare exactly; an email is no group
    ca = make_ca(admins=admins)
    admin = provider.user("admin")
    assert _names(_sign(ca, id_token("admin"), "ca.internal")) == (
        "admin@example.com", ["admin@example.com", f"{provider.issuer}#{admin.sub}"])


# -- refusals --------------------------------------------------------------------------------------

def test_an_unverified_email_is_refused(make_ca: MakeCA, id_token: IdToken) -> None:
    # stricter than step-ca: an email the provider did not verify names no one, even in admins
    ca = make_ca(admins=["eve@example.com"])
    _refused(ca, id_token("unverified"), "the email is not verified (email_verified is not "
                                         "true)", subject="eve@example.com")
    ca = make_ca(domains=["example.com"])
    _refused(ca, id_token("unverified"), "the email is not verified")


def test_a_wrong_domain_is_refused(make_ca: MakeCA, id_token: IdToken) -> None:
    ca = make_ca(domains=["EXAMPLE.com"])
    _refused(ca, id_token("elsewhere"), "email is not allowed", subject="bob@other.example")
    assert _names(_sign(ca, id_token("mike")))[0] == "mike@example.com"


def test_admins_need_no_allowed_domain(make_ca: MakeCA, id_token: IdToken) -> None:
    # step-ca's: domains restrict the users, not the admins
    ca = make_ca(domains=["example.com"], admins=["bob@Other.Example"])
    assert _names(_sign(ca, id_token("elsewhere"), "host.other.example"))[0] == (
        "host.other.example")


def test_groups_restrict_who_may_sign(make_ca: MakeCA, id_token: IdToken) -> None:
    ca = make_ca(groups=["admins", "operators"])
    _refused(ca, id_token("mike"), "invalid group")
    assert _names(_sign(ca, id_token("admin")))[0] == "admin@example.com"


def test_another_client_id_finds_no_provisioner(make_ca: MakeCA, id_token: IdToken) -> None:
    ca = make_ca(clientID="another-client")
    _refused(ca, id_token("mike"), "no provisioner")
    # found anyway (by name here), the token is not for its client id
    with pytest.raises(Unauthorized, match="wrong audience: not for this client id"):
        _provisioner(ca).authorize_sign(parse_unverified(id_token("mike")))


def test_a_token_of_another_issuer_is_refused(make_ca: MakeCA, other_provider: OpenIDProvider,
                                              browser: Browser) -> None:
    ca = make_ca()
    token = sign_in(other_provider, browser, "mike")
    assert parse_unverified(token).claims["aud"] == _provisioner(ca).client_id
    _refused(ca, token, f"no key '{parse_unverified(token).header['kid']}' in the OpenID "
                        "provider's keys")


def test_a_token_whose_issuer_is_not_the_discovered_one_is_refused(
        make_ca: MakeCA, provider: OpenIDProvider, id_token: IdToken) -> None:
    # the provider's keys, but a discovery document that names another issuer
    with DiscoveryDocument({**provider.discovery(), "issuer": "https://idp.example"}) as doc:
        ca = make_ca(configurationEndpoint=doc.url)
    _refused(ca, id_token("mike"), "wrong issuer")


def test_tenantid_in_the_issuer_is_replaced(make_ca: MakeCA, provider: OpenIDProvider,
                                            id_token: IdToken) -> None:
    # Microsoft Entra's common endpoint names its issuer .../{tenantid}/v2.0
    port = provider.issuer.rpartition(":")[2]
    templated = {**provider.discovery(), "issuer": "http://127.0.0.1:{tenantid}"}
    with DiscoveryDocument(templated) as doc:
        ca = make_ca(configurationEndpoint=doc.url, tenantID=port)
        other = make_ca(configurationEndpoint=doc.url, tenantID="1")
    assert _names(_sign(ca, id_token("mike")))[0] == "mike@example.com"
    _refused(other, id_token("mike"), "wrong issuer")


def test_a_rotated_key_is_refused_once_then_found(
        stepca_pki: TestPKI, tmp_path: Path, other_provider: OpenIDProvider,
        browser: Browser) -> None:
    ca = TestCA(stepca_pki.config(tmp_path, authority={"disableIssuedAtCheck": True},
                                  provisioners=[_entry(other_provider)]))
    keys = _provisioner(ca).provider
    try:
        assert keys.wait_fetched(timeout=30) and keys.ready
        new_kid = other_provider.rotate_keys()
        token = sign_in(other_provider, browser, "mike")
        assert parse_unverified(token).header["kid"] == new_kid
        fetched = keys.keys.fetches
        # refused at once (no request waits on the provider), and a refresh is asked for
        _refused(ca, token, f"no key '{new_kid}' in the OpenID provider's keys")
        assert keys.keys.wait_fetched(fetched + 1, timeout=30)
        assert _names(_sign(ca, token))[0] == "mike@example.com"
    finally:
        keys.stop()
        ca.close()


def test_a_provider_down_at_start_up_refuses_with_the_reason(
        make_ca: MakeCA, id_token: IdToken, caplog: pytest.LogCaptureFixture) -> None:
    down = "http://127.0.0.1:9/.well-known/openid-configuration"
    with caplog.at_level(logging.WARNING, logger="stepca.remote_keys"):
        ca = make_ca(ready=False, configurationEndpoint="http://127.0.0.1:9")
    assert any(f"provisioner '{NAME}': cannot fetch {down}" in r.getMessage()
               for r in caplog.records)
    _refused(ca, id_token("mike"), "the OpenID provider's keys are not available yet: "
                                   f"provisioner '{NAME}': cannot fetch {down}: ")
    # the rest of the CA works
    assert ca.client.simulate_get("/health").status_code == 200


def test_a_token_issued_before_the_ca_started_is_refused(
        make_ca: MakeCA, id_token: IdToken) -> None:
    token = id_token("mike")
    later = utcnow() + timedelta(minutes=5)  # the CA started five minutes after the sign-in
    ca = make_ca(issued_at_check=True, clock=lambda: later)
    _refused(ca, token, "token issued before the bootstrap of certificate authority")


@pytest.mark.parametrize(("header", "reason"), [
    ({"alg": "none"}, "alg none is not an asymmetric signature algorithm"),
    ({"alg": "HS256"}, "alg HS256 is not an asymmetric signature algorithm"),
    ({"alg": "ES256"}, "algorithm ES256 does not fit the key"),
    ({"alg": "PS256"}, "invalid token signature"),
    ({"kid": None}, "an ID token names its key (kid)"),
    ({"kid": "forged"}, "no key 'forged' in the OpenID provider's keys"),
])
def test_a_tampered_header_is_refused(make_ca: MakeCA, id_token: IdToken,
                                      header: dict[str, Any], reason: str) -> None:
    ca = make_ca()
    _refused(ca, _with_header(id_token("mike"), **header), reason)


def test_a_tampered_payload_is_refused(make_ca: MakeCA, id_token: IdToken) -> None:
    ca = make_ca()
    header, _, signature = id_token("mike").split(".")
    payload = id_token("admin").split(".")[1]
    _refused(ca, f"{header}.{payload}.{signature}", "invalid token signature")


@pytest.fixture
def local() -> Iterator[LocalIssuer]:
    with LocalIssuer() as issuer:
        yield issuer


def test_a_token_of_the_local_issuer_is_accepted(make_ca: MakeCA, local: LocalIssuer) -> None:
    # the baseline of the refusals below: the same token but for one claim is issued
    ca = make_ca(clientID=CLIENT, configurationEndpoint=local.url, issued_at_check=True)
    assert _names(_sign(ca, local.id_token(azp=CLIENT, aud=["other", CLIENT]))) == (
        "mike@example.com", ["mike@example.com", f"{local.url}#mike-sub"])


@pytest.mark.parametrize(("changes", "reason"), [
    ({"azp": "other"}, "no provisioner"),
    ({"aud": ["other", CLIENT], "azp": "other"}, "no provisioner"),
    ({"aud": "other"}, "no provisioner"),
    ({"iss": "https://idp.example"}, "wrong issuer"),
    ({"exp": None}, "exp is required"),
    ({"exp": "tomorrow"}, "exp is not a number"),
    ({"exp": -120}, "token has expired"),
    ({"nbf": 600}, "not yet valid"),
    ({"iat": 600, "exp": 900}, "issued in the future"),
    ({"exp": 2 * 3600}, "a token may be valid for at most 1h"),
    ({"sub": None}, "subject is required"),
    ({"groups": "developers"}, "groups must be a list of strings"),
    ({"email": None}, "the token has no email"),
    ({"email_verified": "true"}, "the email is not verified"),
    ({"nonce": ["n"]}, "nonce must be a string"),
])
def test_each_claim_is_checked(make_ca: MakeCA, local: LocalIssuer, changes: dict[str, Any],
                               reason: str) -> None:
    ca = make_ca(clientID=CLIENT, configurationEndpoint=local.url)
    now = int(time.time())
    timed = {k: now + v if k in ("exp", "nbf", "iat") and isinstance(v, int) else v
             for k, v in changes.items()}
    _refused(ca, local.id_token(**timed), reason)


def test_an_azp_of_another_client_is_refused(make_ca: MakeCA, local: LocalIssuer) -> None:
    # found through its audience (by name here): the authorized party must be this client
    provisioner = _provisioner(make_ca(clientID=CLIENT, configurationEndpoint=local.url))
    with pytest.raises(Unauthorized, match="invalid azp"):
        provisioner.authorize_sign(parse_unverified(local.id_token(azp="other")))


# -- revocation, lookup, configuration -------------------------------------------------------------

def test_only_admins_revoke(make_ca: MakeCA, id_token: IdToken) -> None:
    provisioner = _provisioner(make_ca(admins=["admins"]))
    admin = parse_unverified(id_token("admin"))
    assert provisioner.authorize_revoke(admin) == admin.claims["nonce"]
    with pytest.raises(Unauthorized, match="cannot revoke with a non-admin ID token"):
        provisioner.authorize_revoke(parse_unverified(id_token("mike")))


def test_the_token_id_is_the_nonce_else_the_tokens_own() -> None:
    id_of = stepca_oidc.OIDCProvisioner._token_id
    assert id_of(Token(raw="h.p.s", header={}, claims={"nonce": "n-1", "jti": "j"})) == "n-1"
    assert id_of(Token(raw="h.p.s", header={}, claims={"jti": "j"})) == "j"
    assert len(id_of(Token(raw="h.p.s", header={}, claims={}))) == 64  # sha256 of h.p
    with pytest.raises(Unauthorized, match="nonce must be a string"):
        id_of(Token(raw="h.p.s", header={}, claims={"nonce": 5}))


@pytest.mark.parametrize(("claims", "key"), [
    ({"azp": "client", "aud": ["other", "client"]}, "client"),
    ({"aud": ["client", "other"]}, "client"),
    ({"aud": "client"}, "client"),
    ({"aud": []}, None),
    ({"iss": "x"}, None),
])
def test_tokens_find_their_provisioner_by_azp_else_first_audience(
        claims: dict[str, Any], key: str | None) -> None:
    assert stepca_oidc.OIDCProvisioner.token_lookup_key(
        Token(raw="", header={}, claims=claims)) == key


def test_the_discovery_url_is_completed_as_step_cas() -> None:
    url = stepca_oidc.provisioner.discovery_url
    assert url("https://idp.example") == "https://idp.example/.well-known/openid-configuration"
    assert url("https://idp.example/t/") == (
        "https://idp.example/t/.well-known/openid-configuration")
    assert url("https://idp.example/.well-known/openid-configuration?x=1") == (
        "https://idp.example/.well-known/openid-configuration?x=1")


def test_the_issuer_uri_escapes_the_subject_as_go_does() -> None:
    uri = stepca_oidc.provisioner.issuer_uri
    assert uri("https://idp.example", "a b#c/d@e") == "https://idp.example#a%20b%23c/d@e"
    assert uri("idp", "x") is None


def _built(options: dict[str, Any]) -> Any:
    context = ProvisionerContext(audiences=Audiences.for_dns_names(["localhost"]),
                                 claims=Claims(), clock=utcnow, started_at=utcnow())
    return stepca_oidc.OIDCProvisioner.from_config(
        {"type": "OIDC", "name": NAME, **options}, context=context)


REQUIRED = {"clientID": "c", "configurationEndpoint": "http://127.0.0.1:9"}


@pytest.mark.parametrize(("options", "message"), [
    ({"configurationEndpoint": "http://127.0.0.1:9"}, "'clientID' is required"),
    ({"clientID": "c"}, "'configurationEndpoint' is required"),
    ({**REQUIRED, "clientID": 5}, "'clientID' must be a non-empty string"),
    ({**REQUIRED, "configurationEndpoint": "file:///etc/passwd"}, "not an http(s) URL"),
    ({**REQUIRED, "clientSecret": None}, "'clientSecret' must be a string"),
    ({**REQUIRED, "admins": "admin@example.com"}, "'admins' must be a list"),
    ({**REQUIRED, "domains": [""]}, "'domains' must be a list of non-empty strings"),
    ({**REQUIRED, "groups": [1]}, "'groups' must be a list"),
    ({**REQUIRED, "scopes": "openid"}, "'scopes' must be a list"),
    ({**REQUIRED, "authParams": ["prompt"]}, "'authParams': 'prompt' is not key=value"),
    ({**REQUIRED, "listenAddress": "127.0.0.1"}, "'listenAddress' must be host:port"),
    ({**REQUIRED, "listenAddress": "::1:10000"}, "'listenAddress' must be host:port"),
    ({**REQUIRED, "tenantID": 7}, "'tenantID' must be a non-empty string"),
    ({**REQUIRED, "domain": ["example.com"]}, "unknown key(s) domain"),
    ({**REQUIRED, "options": {"x509": {"templateFile": "t.tpl"}}},
     "'options' (certificate templates)"),
    ({**REQUIRED, "claims": {"maxTLSCertDuration": "1m"}}, "claims"),
])
def test_invalid_config_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        _built(options)
    assert message in str(refused.value)


@pytest.mark.parametrize("listen", ["127.0.0.1:10000", ":10000", "[::1]:10000", "localhost:",
                                    ""])
def test_listen_addresses_as_go_splits_them(listen: str) -> None:
    provisioner = _built({**REQUIRED, "listenAddress": listen, "clientSecret": ""})
    provisioner.provider.stop()


def test_two_provisioners_for_one_client_id_are_refused(
        stepca_pki: TestPKI, tmp_path: Path, provider: OpenIDProvider) -> None:
    entries = [_entry(provider), {**_entry(provider), "name": "oidc-2"}]
    with pytest.raises(ConfigError, match="provisioners 'oidc' and 'oidc-2' have the same "
                                          "token identifier"):
        TestCA(stepca_pki.config(tmp_path, provisioners=entries))


class DiscoveryDocument:
    """A discovery document served on 127.0.0.1, and a JWKS beside it: another issuer in front
    of a real provider's keys, or (``LocalIssuer``) a key of the test's own."""

    def __init__(self, document: dict[str, Any], jwks: dict[str, Any] | None = None) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._server.bodies = {  # type: ignore[attr-defined]
            "/.well-known/openid-configuration": json.dumps(document).encode(),
            "/jwks": json.dumps(jwks).encode()}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # the CAs made inside fetched it once (make_ca waited): they keep what they fetched
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.server.bodies.get(self.path)  # type: ignore[attr-defined]
        self.send_response(200 if body else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args: object) -> None:
        pass


class LocalIssuer(DiscoveryDocument):
    """An issuer whose key is the test's: ID tokens no certified provider would issue (an
    ``azp`` of another client, no ``exp``, a two-hour life, ...), to prove each check."""

    def __init__(self) -> None:
        self.key = generate_key("EC")
        super().__init__({}, {"keys": [jwk_from_key(self.key, kid="local", private=False)]})
        bodies: dict[str, bytes] = self._server.bodies  # type: ignore[attr-defined]
        bodies["/.well-known/openid-configuration"] = json.dumps(
            {"issuer": self.url, "jwks_uri": f"{self.url}/jwks"}).encode()

    def id_token(self, **changes: Any) -> str:
        """A valid ID token for mike, with ``changes`` (None removes a claim)."""
        now = int(time.time())
        claims = {"iss": self.url, "aud": CLIENT, "sub": "mike-sub", "nonce": secrets.token_hex(8),
                  "email": "mike@example.com", "email_verified": True, "groups": ["developers"],
                  "iat": now, "exp": now + 300, **changes}
        return sign_jwt({k: v for k, v in claims.items() if v is not None}, self.key,
                        headers={"kid": "local"})


def test_provisioners_lists_what_steps_browser_flow_needs(make_ca: MakeCA,
                                                          provider: OpenIDProvider) -> None:
    # step runs the sign-in from this entry, the client secret included (as step-ca lists it:
    # a native application's secret is shown to every user)
    options = {"scopes": ["openid", "email"], "listenAddress": "127.0.0.1:10000",
               "authParams": ["prompt=login"], "admins": ["admins"]}
    listed = make_ca(**options).client.simulate_get("/provisioners").json
    assert listed["provisioners"] == [{**_entry(provider), **options}]
