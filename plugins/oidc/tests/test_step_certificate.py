"""The seed's single sign-on transcript through the real ``step`` and ``step-ca``:
``step ca certificate mike@example.com mike.crt mike.key`` opens the system browser (Python's
``webbrowser``, here a ``BROWSER`` script that hands the URL to the test), the person signs in
with the real ``oidc-provider`` in Debian's headless Chromium, and the certificate is for their
own identity; an admin gets the name they asked for."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509

from stepca.jose import b64url_encode, parse_unverified
from stepca.testing.http import RunningCA, running_ca
from stepca.testing.oidc import Browser, OpenIDProvider
from stepca.testing.process import scripts_dir, wait_for

pytestmark = pytest.mark.e2e

NOT_READY = "the OpenID provider's keys are not available yet"


@pytest.fixture(scope="module")
def ca(provider: OpenIDProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCA]:
    entry = {"type": "OIDC", "name": "Example", "clientID": provider.client_id,
             "clientSecret": provider.client_secret,
             "configurationEndpoint": provider.discovery_url, "admins": ["admins"],
             "domains": ["example.com"],
             # the groups claim comes with its scope: step asks for the provisioner's scopes
             "scopes": ["openid", "email", "groups"]}
    with running_ca(tmp_path_factory.mktemp("oidc-ca"),
                    ca_json={"provisioners": [entry]}) as running:
        _wait_for_keys(running, provider)
        yield running


def _wait_for_keys(ca: RunningCA, provider: OpenIDProvider) -> None:
    """The worker fetches the provider's keys in the background: until it has them, a token
    for this provisioner is refused with that reason (an unsigned one, here, which is refused
    for its signature once the keys are there)."""
    header = json.dumps({"alg": "RS256", "kid": "probe"}).encode()
    claims = json.dumps({"azp": provider.client_id, "aud": provider.client_id}).encode()
    probe = f"{b64url_encode(header)}.{b64url_encode(claims)}.c2ln"

    def ready() -> bool:
        answer = requests.post(f"https://127.0.0.1:{ca.port}/1.0/sign",
                               json={"csr": "x", "ott": probe}, verify=str(ca.root), timeout=10)
        return NOT_READY not in answer.text

    wait_for(ready, "the CA to have the provider's keys", timeout=30)


class StepCertificate:
    """``step ca certificate`` (or ``step ca token``, ``command``) running, its system browser
    a script that writes the URL."""

    def __init__(self, ca: RunningCA, tmp_path: Path, subject: str, *args: str,
                 command: tuple[str, ...] = ()) -> None:
        self.tmp_path, self.subject = tmp_path, subject
        self.url_file = tmp_path / "opened-url"
        script = tmp_path / "browser"
        script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" > {self.url_file}.tmp && "
                          f"mv {self.url_file}.tmp {self.url_file}\n")
        script.chmod(0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        env |= {"STEPPATH": str(tmp_path / "step"), "BROWSER": str(script),
                "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}
        command = command or ("ca", "certificate", subject, f"{subject}.crt", f"{subject}.key")
        self.process = subprocess.Popen(
            [str(scripts_dir() / "step"), *command, "--provisioner", "Example", *args],
            env=env, cwd=tmp_path,
            text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sign_in(self, browser: Browser, user: Any) -> None:
        wait_for(lambda: self.url_file.exists() or self.process.poll() is not None,
                 "step to open the browser")
        assert self.url_file.exists(), self.finish()
        browser.sign_in(self.url_file.read_text().strip(), user)

    def finish(self) -> tuple[int, str]:
        self.out, err = self.process.communicate(timeout=120)
        return self.process.returncode, err

    def names(self) -> tuple[str, list[str]]:
        cert = x509.load_pem_x509_certificate((self.tmp_path / f"{self.subject}.crt").read_bytes())
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return str(cn), [str(name.value) for name in sans]


def test_a_person_gets_a_certificate_for_their_own_identity(
        ca: RunningCA, provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    mike = provider.user("mike")
    step = StepCertificate(ca, tmp_path, "mike@example.com")
    step.sign_in(browser, mike)
    code, err = step.finish()
    assert code == 0, err
    assert err.splitlines()[0].endswith(f"Provisioner: Example (OIDC) [client: "
                                        f"{provider.client_id}]")
    assert step.names() == ("mike@example.com",
                            ["mike@example.com", f"{provider.issuer}#{mike.sub}"])


def test_a_person_asking_for_another_name_gets_only_their_own(
        ca: RunningCA, provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    mike = provider.user("mike")
    step = StepCertificate(ca, tmp_path, "db.internal", "--san", "db.internal")
    step.sign_in(browser, mike)
    code, err = step.finish()
    assert code == 0, err
    assert step.names() == ("mike@example.com",
                            ["mike@example.com", f"{provider.issuer}#{mike.sub}"])


def test_an_admin_gets_the_name_they_ask_for(
        ca: RunningCA, provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    step = StepCertificate(ca, tmp_path, "db.internal")
    step.sign_in(browser, provider.user("admin"))
    code, err = step.finish()
    assert code == 0, err
    assert step.names() == ("db.internal", ["db.internal"])


def test_an_unverified_email_gets_nothing(
        ca: RunningCA, provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    step = StepCertificate(ca, tmp_path, "eve@example.com")
    step.sign_in(browser, provider.user("unverified"))
    code, err = step.finish()
    assert code == 1 and "email" in err.splitlines()[-1], err
    assert not (tmp_path / "eve@example.com.crt").exists()


def test_step_ca_token_prints_the_id_token_the_sign_in_gave(
        ca: RunningCA, provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    mike = provider.user("mike")
    step = StepCertificate(ca, tmp_path, "mike@example.com",
                           command=("ca", "token", "mike@example.com"))
    step.sign_in(browser, mike)
    code, err = step.finish()
    assert code == 0, err
    claims = parse_unverified(step.out.strip()).claims  # the CA checks it: see test_e2e.py
    assert (claims["iss"], claims["aud"], claims["email"]) == (
        provider.issuer, provider.client_id, mike.email)
