"""The OIDC test infrastructure is real: panva's `oidc-provider` under Node.js serves discovery
and keys on 127.0.0.1, Debian's headless Chromium signs a user in on its pages, the code comes
back to a loopback callback, and the ID token verifies with an independent JOSE library
(joserfc; the provider signs with Node's `jose`). When a part is missing, the helpers fail
naming it."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from stepca.testing.oidc import (
    Browser,
    CallbackServer,
    OpenIDProvider,
    Unavailable,
    pkce_pair,
)

pytestmark = pytest.mark.e2e


def verified_claims(provider: OpenIDProvider, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims once joserfc verified its signature against the provider's JWKS,
    its issuer, audience, nonce and times."""
    keys = KeySet.import_key_set(requests.get(provider.jwks_url, timeout=10).json())
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True}, iat={"essential": True}).validate(token.claims)
    return dict(token.claims)


def header(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==")))


def test_discovery_and_keys_are_served(provider: OpenIDProvider) -> None:
    discovery = requests.get(provider.discovery_url, timeout=10).json()
    assert discovery["issuer"] == provider.issuer
    assert discovery["jwks_uri"] == provider.jwks_url
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "email", "groups"} <= set(discovery["scopes_supported"])
    assert {"sub", "email", "email_verified", "groups"} <= set(discovery["claims_supported"])
    keys = requests.get(provider.jwks_url, timeout=10).json()["keys"]
    assert [(key["kty"], key["alg"]) for key in keys] == [("RSA", "RS256")]
    assert keys[0]["kid"] and "d" not in keys[0]


def test_the_provider_refuses_an_authorization_without_pkce_or_to_another_host(
        provider: OpenIDProvider) -> None:
    with CallbackServer() as callback:
        url = provider.authorization_url(callback.redirect_uri, code_challenge="", state="s",
                                         nonce="n").replace("&code_challenge=", "&x=")
        refused = requests.get(url, allow_redirects=False, timeout=10)
        assert refused.status_code in (302, 303)
        location = urlsplit(refused.headers["location"])
        assert location.geturl().startswith(callback.redirect_uri)
        assert dict(parse_qsl(location.query))["error"] == "invalid_request"
    elsewhere = provider.authorization_url("http://192.0.2.1/callback", code_challenge="x" * 43,
                                           state="s", nonce="n")
    refused = requests.get(elsewhere, allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "redirect_uri" in refused.text


def test_the_browser_signs_in_and_the_id_token_verifies_independently(
        provider: OpenIDProvider, browser: Browser) -> None:
    mike = provider.user("mike")
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with CallbackServer() as callback:  # a random port: the client registered 127.0.0.1 only
        reached = browser.sign_in(provider.authorization_url(
            callback.redirect_uri, code_challenge=challenge, state=state, nonce=nonce), mike)
        answer = callback.wait()
    assert reached.startswith(callback.redirect_uri + "?")
    assert answer["state"] == state and answer["iss"] == provider.issuer

    token_endpoint = provider.discovery()["token_endpoint"]
    client = (provider.client_id, provider.client_secret)

    def exchange(code_verifier: str) -> requests.Response:
        return requests.post(token_endpoint, auth=client, timeout=10, data={
            "grant_type": "authorization_code", "code": answer["code"],
            "redirect_uri": callback.redirect_uri, "code_verifier": code_verifier})

    wrong = exchange(pkce_pair()[0])
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    tokens = exchange(verifier)
    assert tokens.status_code == 200, tokens.text
    replayed = exchange(verifier)
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")

    claims = verified_claims(provider, tokens.json()["id_token"], nonce)
    assert claims["sub"] == mike.sub
    assert (claims["email"], claims["email_verified"]) == ("mike@example.com", True)
    assert claims["groups"] == ["developers"]
    with pytest.raises(Exception, match="nonce"):
        verified_claims(provider, tokens.json()["id_token"], "another nonce")


def test_an_unverified_email_comes_with_email_verified_false(
        provider: OpenIDProvider, browser: Browser) -> None:
    nonce = secrets.token_urlsafe(16)
    tokens = provider.code_flow(browser, provider.user("unverified"), nonce=nonce)
    claims = verified_claims(provider, tokens["id_token"], nonce)
    assert (claims["email"], claims["email_verified"]) == ("eve@example.com", False)
    assert claims["sub"] == provider.user("unverified").sub


def test_rotated_keys_sign_new_tokens_with_a_new_published_kid(browser: Browser) -> None:
    with OpenIDProvider() as provider:
        admin = provider.user("admin")
        before = provider.code_flow(browser, admin, nonce="before")["id_token"]
        old_kid = header(before)["kid"]
        assert verified_claims(provider, before, "before")["sub"] == admin.sub
        new_kid = provider.rotate_keys()
        assert new_kid != old_kid
        published = [key["kid"] for key in requests.get(provider.jwks_url, timeout=10).json()
                     ["keys"]]
        assert published == [new_kid, old_kid]
        after = provider.code_flow(browser, admin, nonce="after")["id_token"]
        assert header(after)["kid"] == new_kid
        claims = verified_claims(provider, after, "after")
        assert claims["sub"] == admin.sub  # the same subject across sign-ins and keys
        assert claims["groups"] == ["admins", "developers"]


def test_missing_node_or_chromium_fails_naming_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match="Node.js is not installed .*scripts/install"):
        OpenIDProvider().start()
    with pytest.raises(Unavailable, match="Chromium is not installed .*scripts/install"):
        Browser().__enter__()


def test_a_chromium_that_cannot_start_fails_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "chromium"
    broken.write_text("#!/bin/sh\n"
                      "echo 'error while loading shared libraries: libnss3.so' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    # its own process: Playwright's synchronous API runs one instance per thread, and the
    # module's browser is open
    run = subprocess.run(
        [sys.executable, "-c", "from stepca.testing.oidc import Browser\n"
                               "Browser(timeout=20).__enter__()"],
        env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert re.search(r"(?s)Unavailable: Chromium \(.*/chromium\) could not start:.*"
                     r"libnss3.so", run.stderr), run.stderr


def test_a_provider_that_exits_before_it_is_ready_fails_with_its_reason() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(Unavailable, match=r"(?s)exited 1 before it was ready.*EADDRINUSE"):
            OpenIDProvider(port=taken.getsockname()[1]).start()


def stalling_node(folder: Path, *, times: str) -> None:
    """A ``node`` first on PATH that prints nothing for a minute: on its first start only
    (``times="once"``) or on every one."""
    real = shutil.which("node")
    assert real is not None
    stall = 'exec sleep 60'
    once = f'if [ -e "{folder}/stalled" ]; then exec "{real}" "$@"; fi\ntouch "{folder}/stalled"\n'
    script = folder / "node"
    script.write_text("#!/bin/sh\n" + (once if times == "once" else "") + stall + "\n")
    script.chmod(0o755)


def test_a_provider_that_prints_nothing_is_started_once_more(tmp_path: Path, monkeypatch) -> None:
    stalling_node(tmp_path, times="once")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with OpenIDProvider(start_timeout=3) as provider:
        assert provider.discovery()["issuer"] == provider.issuer
    assert (tmp_path / "stalled").exists()


def test_a_provider_that_never_prints_fails_saying_where_it_waited(tmp_path: Path,
                                                                   monkeypatch) -> None:
    stalling_node(tmp_path, times="always")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(Unavailable, match=r"printed no ready line within 1 s, 2 times \(pid \d+ "
                                          r"state S waiting in \S+, [\d.]+ s of CPU; pid \d+"):
        OpenIDProvider(start_timeout=1).start()
