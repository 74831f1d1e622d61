"""Through the real ``step-ca`` (gunicorn, one forked worker): the worker fetches the provider's
discovery document and keys in its own background thread, and ``/1.0/sign`` takes ID tokens the
real ``oidc-provider`` issued after Debian's headless Chromium signed a user in. (``step ca
certificate`` through the browser is the client side's test.)"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509

from stepca.testing import make_csr, row_counts
from stepca.testing.http import RunningCA, running_ca
from stepca.testing.oidc import Browser, OpenIDProvider
from stepca.testing.process import wait_for

pytestmark = pytest.mark.e2e

NOT_READY = "the OpenID provider's keys are not available yet"


def _id_token(provider: OpenIDProvider, browser: Browser, login: str) -> str:
    nonce = secrets.token_urlsafe(24)
    return str(provider.code_flow(browser, provider.user(login), nonce=nonce)["id_token"])


def _start(tmp_path: Path, provider: OpenIDProvider, **options: Any) -> Any:
    entry = {"type": "OIDC", "name": "Example", "clientID": provider.client_id,
             "clientSecret": provider.client_secret,
             "configurationEndpoint": provider.discovery_url, **options}
    return running_ca(tmp_path, ca_json={"provisioners": [entry]})


def _sign(ca: RunningCA, token: str, subject: str, sans: list[str] | None = None,
          ready: str = NOT_READY) -> requests.Response:
    """``/1.0/sign`` once the worker has the provider's keys: its first fetch runs in the
    background, and until then the CA refuses with that reason and spends nothing."""
    csr = make_csr(subject, sans)[0]
    outcome: list[requests.Response] = []

    def attempt() -> bool:
        outcome[:] = [requests.post(f"https://127.0.0.1:{ca.port}/1.0/sign",
                                    json={"csr": csr, "ott": token}, verify=str(ca.root),
                                    timeout=10)]
        return ready not in outcome[0].text

    wait_for(attempt, "the CA to have the provider's keys", timeout=30)
    return outcome[0]


def _rows(tmp_path: Path) -> tuple[int, int, int]:
    return row_counts(tmp_path / "run" / "db" / "stepca.db")


def _names(response: requests.Response) -> tuple[str, list[str]]:
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json()["crt"].encode())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(cn), [str(name.value) for name in sans]


def test_step_ca_issues_for_id_tokens(tmp_path: Path, provider: OpenIDProvider,
                                      browser: Browser) -> None:
    with _start(tmp_path, provider, admins=["admins"], domains=["example.com"]) as ca:
        # refusals first (each spends nothing): an unverified email, another domain
        for login, reason in (("unverified", "the email is not verified"),
                              ("elsewhere", "email is not allowed")):
            refused = _sign(ca, _id_token(provider, browser, login), "x.example.com")
            assert refused.status_code == 401 and reason in refused.text, refused.text
        assert _rows(tmp_path) == (0, 0, 0)

        mike = _id_token(provider, browser, "mike")
        issued = _sign(ca, mike, "root.example.com", ["root.example.com", "10.0.0.1"])
        assert _names(issued) == ("mike@example.com", [
            "mike@example.com", f"{provider.issuer}#{provider.user('mike').sub}"])
        replayed = _sign(ca, mike, "mike@example.com")
        assert replayed.status_code == 401 and "already used" in replayed.text
        assert _rows(tmp_path)[:2] == (1, 1)

        admin = _sign(ca, _id_token(provider, browser, "admin"), "ca.internal",
                      ["ca.internal"])
        assert _names(admin) == ("ca.internal", ["ca.internal"])


def test_a_provider_down_at_start_up_leaves_the_ca_up(tmp_path: Path, provider: OpenIDProvider,
                                                      browser: Browser) -> None:
    down = "http://127.0.0.1:9/.well-known/openid-configuration"
    with _start(tmp_path, provider, configurationEndpoint="http://127.0.0.1:9") as ca:
        health = requests.get(f"https://127.0.0.1:{ca.port}/health", verify=str(ca.root),
                              timeout=10)
        assert health.status_code == 200
        # once the worker's first fetch has failed, the refusal says why
        refused = _sign(ca, _id_token(provider, browser, "mike"), "mike@example.com",
                        ready="not fetched yet")
        assert refused.status_code == 401, refused.text
        assert f"{NOT_READY}: provisioner 'Example': cannot fetch {down}: " in refused.text
        assert _rows(tmp_path) == (0, 0, 0)
        assert f"provisioner 'Example': cannot fetch {down}" in ca.process.log_path.read_text()
