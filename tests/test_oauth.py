"""``step oauth`` against a real OpenID provider (panva's oidc-provider on 127.0.0.1) with a real
browser (headless Chromium): the CLI opens the system browser through ``BROWSER`` (a script that
hands the URL to the test), the test signs in with Chromium, and what the CLI prints is checked
with an independent JOSE library (joserfc). Playwright's synchronous API belongs to the thread
that started it, so the CLI runs as a subprocess (or ``authorize`` in a worker thread) while the
test thread drives the browser."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from stepca.testing.oidc import Browser, CallbackServer, OpenIDProvider
from stepca.testing.process import free_port, scripts_dir, wait_for
from stepca_cli.oauth import TokenResponse, authorize

pytestmark = pytest.mark.e2e


class StepOAuth:
    """``step oauth`` running, its system browser a script that writes the URL it is given to a
    file (the ``BROWSER`` hook of Python's ``webbrowser``)."""

    def __init__(self, tmp_path: Path, *args: str, stdin: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.url_file = tmp_path / "opened-url"
        script = tmp_path / "browser"
        # it chatters on stdout, as browsers do: that must not reach step's stdout (the token)
        script.write_text(f"#!/bin/sh\necho 'opening in a new tab'\n"
                          f"printf '%s\\n' \"$1\" > {self.url_file}.tmp && "
                          f"mv {self.url_file}.tmp {self.url_file}\n")
        script.chmod(0o700)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        environment.update({"STEPPATH": str(tmp_path / "step"), "BROWSER": str(script),
                            **(env or {})})
        self.process = subprocess.Popen(
            [str(scripts_dir() / "step"), "oauth", *args], env=environment, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def opened_url(self) -> str:
        """The URL the CLI opened in the system browser."""
        wait_for(lambda: self.url_file.exists() or self.process.poll() is not None,
                 "step oauth to open the browser")
        assert self.url_file.exists(), self.finish()
        return self.url_file.read_text().strip()

    def finish(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=120)
        return self.process.returncode, out, err


def client_args(provider: OpenIDProvider, *more: str, secret: str | None = None) -> list[str]:
    return ["--provider", provider.discovery_url, "--client-id", provider.client_id,
            "--client-secret", secret or provider.client_secret, *more]


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def verified_claims(provider: OpenIDProvider, id_token: str) -> dict[str, Any]:
    """joserfc verifies the signature with the provider's published keys, the issuer, the
    audience and the times."""
    keys = KeySet.import_key_set(requests.get(provider.jwks_url, timeout=10).json())
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True}, iat={"essential": True}).validate(token.claims)
    return dict(token.claims)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# -- the browser flow ------------------------------------------------------------------------------

def test_oidc_bare_prints_an_id_token_the_provider_issued(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    mike = provider.user("mike")
    step = StepOAuth(tmp_path, "--provider", provider.issuer, "--client-id", provider.client_id,
                     "--client-secret", provider.client_secret, "--oidc", "--bare")
    url = step.opened_url()  # the system browser was asked to open it
    sent = query(url)
    assert url.startswith(provider.discovery()["authorization_endpoint"] + "?")
    assert (sent["response_type"], sent["code_challenge_method"]) == ("code", "S256")
    assert sent["scope"] == "openid email" and sent["client_id"] == provider.client_id
    assert re.fullmatch(r"[A-Za-z0-9]{32}", sent["state"])
    assert re.fullmatch(r"[0-9a-f]{64}", sent["nonce"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sent["redirect_uri"])
    reached = browser.sign_in(url, mike)
    assert reached.startswith(sent["redirect_uri"] + "/?code=")

    code, out, err = step.finish()
    assert code == 0, err
    assert f"Your default web browser has been opened to visit:\n\n{url}\n" in err
    id_token = out.strip()
    assert out == id_token + "\n"
    claims = verified_claims(provider, id_token)
    assert (claims["sub"], claims["email"]) == (mike.sub, mike.email)
    assert claims["nonce"] == sent["nonce"]


def test_the_default_output_is_step_json_of_the_token_response(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider, "--scope", "openid", "--scope", "email",
                                            "--scope", "groups"))
    url = step.opened_url()
    assert query(url)["scope"] == "openid email groups"
    browser.sign_in(url, provider.user("admin"))
    code, out, err = step.finish()
    assert code == 0, err
    tokens = json.loads(out)
    assert list(tokens) == ["access_token", "id_token", "refresh_token", "expires_in",
                            "token_type", "scope"]
    assert out.startswith('{\n  "access_token": "')
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    assert tokens["access_token"] and tokens["refresh_token"] == ""
    assert tokens["scope"] == "openid email groups"
    claims = verified_claims(provider, tokens["id_token"])
    assert claims["groups"] == ["admins", "developers"]


def test_listen_fixes_the_callback_port_and_header_prints_the_access_token(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    port = free_port()
    step = StepOAuth(tmp_path, *client_args(provider, "--listen", f":{port}", "--header"))
    url = step.opened_url()
    assert query(url)["redirect_uri"] == f"http://127.0.0.1:{port}"
    assert browser.sign_in(url, provider.user("mike")).startswith(f"http://127.0.0.1:{port}/?")
    code, out, err = step.finish()
    assert code == 0, err
    assert re.fullmatch(r"Authorization: Bearer [\w-]{20,}\n", out)
    assert "." not in out  # the opaque access token, not the ID token


def test_the_public_flow_returns_the_tokens_to_a_provisioner_client(
        provider: OpenIDProvider, browser: Browser, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    # as an OIDC provisioner's client calls it with its /provisioners entry; STEP_OPEN_BROWSER=0
    # prints the URL only, which this test reads while the flow waits in another thread
    monkeypatch.setenv("STEP_OPEN_BROWSER", "0")
    port = free_port()
    entry = {"configurationEndpoint": provider.discovery_url, "clientID": provider.client_id,
             "clientSecret": provider.client_secret, "scopes": ["openid", "email", "groups"],
             "listenAddress": f"127.0.0.1:{port}", "authParams": ["ui_locales=en"]}
    result: list[TokenResponse | BaseException] = []

    def run() -> None:
        try:
            result.append(authorize(
                provider=entry["configurationEndpoint"], client_id=entry["clientID"],
                client_secret=entry["clientSecret"], scopes=entry["scopes"],
                listen=entry["listenAddress"], auth_params=entry["authParams"],
                timeout=120))
        except BaseException as exc:  # handed to the test thread
            result.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    printed = ""

    def url_printed() -> bool:
        nonlocal printed
        printed += capfd.readouterr().err
        return "/auth?" in printed or bool(result)

    wait_for(url_printed, "the authorization URL")
    url = next(line for line in printed.splitlines() if "/auth?" in line)
    assert "web browser" not in printed  # STEP_OPEN_BROWSER=0: printed, not opened
    assert query(url)["ui_locales"] == "en"
    assert query(url)["redirect_uri"] == f"http://127.0.0.1:{port}"
    browser.sign_in(url, provider.user("mike"))
    worker.join(timeout=120)
    tokens = result[0]
    assert isinstance(tokens, TokenResponse), tokens
    claims = verified_claims(provider, tokens.id_token)
    assert claims["email"] == "mike@example.com" and claims["groups"] == ["developers"]


# -- --console -------------------------------------------------------------------------------------

def test_console_prints_the_url_and_reads_where_the_browser_was_sent(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    # the browser runs "elsewhere": whatever answers its redirect, the person copies the URL
    # from its address bar into the terminal
    with CallbackServer() as address_bar:
        step = StepOAuth(tmp_path, *client_args(provider, "--console", "--oidc", "--bare",
                                                "--listen-url", address_bar.redirect_uri),
                         stdin=True)
        assert step.process.stderr is not None and step.process.stdin is not None
        lines = []
        while (line := step.process.stderr.readline()) and not line.startswith("http"):
            lines.append(line)
        assert lines == ["Open a local web browser and visit:\n", "\n"]
        url = line.strip()
        assert query(url)["redirect_uri"] == address_bar.redirect_uri
        reached = browser.sign_in(url, provider.user("mike"))
        address_bar.wait()
        step.process.stdin.write(reached + "\n")
        step.process.stdin.close()
        # the rest of what it printed (readline() buffered some of it: no communicate())
        with step.process:  # closes the pipes
            out, err = step.process.stdout.read(), step.process.stderr.read()
        code = step.process.wait(timeout=60)
    assert code == 0, err
    assert err == "\nEnter the verification code, or the URL your browser was sent to: "
    assert not step.url_file.exists()  # no browser was opened
    claims = verified_claims(provider, out.strip())
    assert claims["nonce"] == query(url)["nonce"] and claims["email"] == "mike@example.com"


def test_console_takes_the_code_alone(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    with CallbackServer() as address_bar:
        step = StepOAuth(tmp_path, *client_args(provider, "-c", "--bare", "--listen-url",
                                                address_bar.redirect_uri), stdin=True)
        assert step.process.stderr is not None
        while (line := step.process.stderr.readline()) and not line.startswith("http"):
            pass
        browser.sign_in(line.strip(), provider.user("mike"))
        code = address_bar.wait()["code"]
        out, _ = step.process.communicate(code + "\n", timeout=60)
    assert step.process.returncode == 0
    assert re.fullmatch(r"[\w-]{20,}\n", out)  # the access token


def test_console_refuses_a_pasted_url_of_another_authorization(
        provider: OpenIDProvider, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider, "--console"), stdin=True)
    out, err = step.process.communicate(
        "http://127.0.0.1/?code=stolen&state=" + "x" * 32 + "\n", timeout=60)
    assert step.process.returncode == 1 and out == ""
    assert last_line(err).endswith("Failed to authenticate: missing or invalid state")


# -- refusals --------------------------------------------------------------------------------------

def test_a_denied_consent_is_one_line_and_exit_1(
        provider: OpenIDProvider, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider))
    url = step.opened_url()
    # a person who presses [ Cancel ] on the provider's sign-in page
    person = requests.Session()
    page = person.get(url, timeout=30)
    cancel = re.search(r'href="([^"]*/abort)"', page.text)
    assert cancel, page.text
    answered = person.get(requests.compat.urljoin(page.url, cancel.group(1)), timeout=30)
    assert answered.status_code == 400 and answered.url.startswith(query(url)["redirect_uri"])
    assert "access_denied" in answered.text
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert last_line(err) == "Failed to authenticate: access_denied (End-User aborted interaction)"


def test_a_provider_error_on_the_callback_carries_its_description(
        provider: OpenIDProvider, tmp_path: Path) -> None:
    # the provider sends the browser straight back: OpenID requires the openid scope with a nonce
    step = StepOAuth(tmp_path, *client_args(provider, "--scope", "email"))
    answered = requests.get(step.opened_url(), timeout=30)
    assert answered.status_code == 400
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert last_line(err) == ("Failed to authenticate: invalid_request (openid scope must be "
                              "requested when using the nonce parameter)")


def test_a_token_endpoint_error_is_one_line_and_exit_1(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider, secret="not the client's secret"))
    browser.sign_in(step.opened_url(), provider.user("mike"))
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert last_line(err) == ("Failed exchanging authorization code: invalid_client. client "
                              "authentication failed")


def test_a_forged_callback_is_refused_and_other_requests_are_not_the_answer(
        provider: OpenIDProvider, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider))
    redirect_uri = query(step.opened_url())["redirect_uri"]
    assert requests.get(f"{redirect_uri}/favicon.ico", timeout=10).status_code == 404
    assert requests.get(f"{redirect_uri}/?code=" + "c" * 20000, timeout=10).status_code == 404
    # neither a code nor an error: step says so and keeps waiting
    assert requests.get(f"{redirect_uri}/?hello=\x1b[31m", timeout=10).status_code == 400
    many = "&".join(f"p{i}=1" for i in range(60))
    assert requests.get(f"{redirect_uri}/?{many}", timeout=10).status_code == 400
    forged = requests.get(f"{redirect_uri}/?" + urlencode({"code": "forged", "state": "x" * 32}),
                          timeout=10)
    assert forged.status_code == 400
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert "Invalid request received: " in err and "\x1b" not in err  # escaped
    assert last_line(err) == "Failed to authenticate: missing or invalid state"
    with pytest.raises(requests.ConnectionError):  # the server is gone with the flow
        requests.get(redirect_uri, timeout=10)


def test_a_code_issued_for_another_nonce_is_refused(
        provider: OpenIDProvider, browser: Browser, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider, "--oidc", "--bare"))
    url = step.opened_url()
    # an attacker's authorization, same state and PKCE challenge, but its own nonce: the
    # provider issues a valid code whose ID token the CLI must not take
    parts = urlsplit(url)
    altered = {**query(url), "nonce": "f" * 64}
    browser.sign_in(urlunsplit(parts._replace(query=urlencode(altered))), provider.user("mike"))
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert last_line(err) == "the provider's ID token does not carry this request's nonce"


def test_nobody_signing_in_times_out_with_one_line(
        provider: OpenIDProvider, tmp_path: Path) -> None:
    step = StepOAuth(tmp_path, *client_args(provider, "--timeout", "1s"))
    redirect_uri = query(step.opened_url())["redirect_uri"]
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert last_line(err) == "oauth command timed out, please try again"
    with pytest.raises(requests.ConnectionError):
        requests.get(redirect_uri, timeout=10)


def test_the_default_provider_is_google_and_hints_and_parameters_are_sent(
        tmp_path: Path) -> None:
    # no network is needed to see where the browser is sent
    step = StepOAuth(tmp_path, "--client-id", "id.apps.googleusercontent.com",
                     "--client-secret", "s", "--email", "mike@example.com", "--prompt",
                     "consent", "--auth-param", "access_type=offline", "--auth-param",
                     "hd=example.com", "--timeout", "1s")
    url = step.opened_url()
    assert url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    sent = query(url)
    assert (sent["login_hint"], sent["prompt"]) == ("mike@example.com", "consent")
    assert (sent["access_type"], sent["hd"]) == ("offline", "example.com")
    assert step.finish()[0] == 1


def test_an_unreachable_provider_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    step = StepOAuth(tmp_path, "--provider", f"http://127.0.0.1:{port}", "--client-id", "c")
    code, out, err = step.finish()
    assert (code, out) == (1, "")
    assert err == (f"client GET http://127.0.0.1:{port}/.well-known/openid-configuration "
                   f"failed: dial tcp 127.0.0.1:{port}: connect: connection refused\n")
    assert not step.url_file.exists()


@pytest.mark.parametrize(("args", "message"), [
    ([], "flag '--client-id' is required: this step has no OAuth application of its own at "
         "Google"),
    (["--provider", "https://idp.example"], "flag '--client-id' required with '--provider'"),
    (["--client-id", "c", "--provider", "http://idp.example"],
     "use a valid provider: google, github, or the https:// URL of an OpenID provider"),
    (["--client-id", "c", "--listen", "10000"],
     "invalid value '10000' for flag '--listen': missing port in address"),
    (["--client-id", "c", "--auth-param", "=x"], "invalid value '=x' for flag '--auth-param'"),
    (["--client-id", "c", "--timeout", "0s"],
     "invalid value '0s' for flag '--timeout': it must be positive"),
    (["--client-id", "c", "--console-flow", "device"],
     "flag '--console-flow' is not supported: the device and out-of-band flows are not "
     "implemented; --console prints the URL and reads the code"),
    (["--client-id", "c", "--implicit"],
     "flag '--implicit' is not supported: the implicit flow is not implemented (it exposes the "
     "tokens in the URL)"),
    (["--client-id", "c", "--account", "a.json"],
     "flag '--account' is not supported: service accounts and installed-application files "
     "are not implemented"),
])
def test_what_is_not_supported_or_malformed_is_refused_in_one_line(
        tmp_path: Path, args: list[str], message: str) -> None:
    step = StepOAuth(tmp_path, *args)
    assert step.finish() == (1, "", message + "\n")
    assert not step.url_file.exists()


def test_step_starts_without_the_flow() -> None:
    # the flow, its server and webbrowser are imported by `step oauth` when it runs, not by
    # every command's start-up
    code = ("import json, sys\nsys.argv = ['step', 'oauth', '--help']\n"
            "from stepca_cli.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps([m in sys.modules for m in ('stepca_cli.oauth', 'webbrowser', "
            "'http.server')]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == [False, False, False]
