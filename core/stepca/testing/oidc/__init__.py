"""A real OpenID provider and a real browser on 127.0.0.1, for the OIDC tests.

``OpenIDProvider`` runs panva's certified ``oidc-provider`` (npm, see ``provider/``) under Node.js
with one client and the test users; ``Browser`` drives Debian's headless Chromium through
Playwright to sign in and consent on the provider's own (development) pages; ``CallbackServer``
is a loopback redirect target (RFC 8252) that catches the authorization response.
``./scripts/install`` installs all of it. When a part is missing or Chromium cannot start, they
raise ``Unavailable`` naming what and how to install it: the tests fail, they do not skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, NoReturn, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["USERS", "Browser", "CallbackServer", "OpenIDProvider", "Unavailable", "User",
           "pkce_pair"]

# provider.mjs with its npm packages: beside this module in a checkout; an environment that
# installed stepca from a wheel (no node_modules in it) names the checkout's folder here
PROVIDER_DIR = Path(os.environ.get("STEPCA_TEST_OIDC_PROVIDER", Path(__file__).parent / "provider"))
INSTALL_HINT = "run ./scripts/install"


START_ATTEMPTS = 2  # a start that prints nothing within start_timeout is tried once more


class Unavailable(RuntimeError):
    """A part the OIDC tests need is missing or cannot start; the message says which and why."""


@dataclass(frozen=True)
class User:
    """A provider account. The development sign-in page takes ``login`` and any password; the
    other fields are the claims the provider releases (``sub`` never changes)."""

    login: str
    sub: str
    email: str
    email_verified: bool
    groups: tuple[str, ...] = ()

    def claims(self) -> dict[str, Any]:
        return {"sub": self.sub, "email": self.email, "email_verified": self.email_verified,
                "groups": list(self.groups)}


USERS = (
    User("mike", "3f6c1a52-mike", "mike@example.com", True, ("developers",)),
    User("admin", "9b0e7d41-admin", "admin@example.com", True, ("admins", "developers")),
    User("unverified", "c2d8e6a0-unverified", "eve@example.com", False),
    User("elsewhere", "51aa0c3e-elsewhere", "bob@other.example", True),
)


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``code_verifier`` and its S256 ``code_challenge`` (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _where(pid: int) -> str:
    """Where a process is stuck, from /proc: its state, the kernel function it waits in and
    its CPU time so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
    except OSError as exc:
        return f"pid {pid}: {exc.strerror}"
    ticks = os.sysconf("SC_CLK_TCK")
    return (f"pid {pid} state {stat[0]} waiting in {wchan}, "
            f"{(int(stat[11]) + int(stat[12])) / ticks:.2f} s of CPU")


def _read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line (at most 4 KiB) from ``stream`` before ``deadline``; b"" if it closed first."""
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not line.endswith(b"\n") and len(line) < 4096:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError
            chunk = os.read(stream.fileno(), 4096 - len(line))
            if not chunk:
                return b""
            line += chunk
    return line


@dataclass
class OpenIDProvider:
    """``oidc-provider`` on 127.0.0.1 with one confidential client whose redirect URIs are on
    127.0.0.1 at any port, PKCE (S256) required, and ``users``; the ID token carries ``email``,
    ``email_verified`` and ``groups`` for the scopes ``email`` and ``groups``."""

    users: tuple[User, ...] = USERS
    client_id: str = "stepca-test-client"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1/", "http://127.0.0.1/callback")
    port: int = 0  # 0: any free port
    start_timeout: float = 30
    issuer: str = field(init=False, default="")
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None, repr=False)
    _folder: tempfile.TemporaryDirectory[str] | None = field(init=False, default=None,
                                                              repr=False)
    _stderr: IO[bytes] | None = field(init=False, default=None, repr=False)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def user(self, login: str) -> User:
        return next(user for user in self.users if user.login == login)

    def start(self) -> Self:
        node = shutil.which("node")
        if node is None:
            raise Unavailable(f"Node.js is not installed ({INSTALL_HINT}: apt-get install nodejs)")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise Unavailable(f"the npm package oidc-provider is not installed in {PROVIDER_DIR} "
                              f"({INSTALL_HINT}: npm ci there; or set "
                              "STEPCA_TEST_OIDC_PROVIDER to a folder where it is)")
        self._folder = tempfile.TemporaryDirectory(prefix="stepca-oidc-")
        folder = Path(self._folder.name)
        config = folder / "config.json"
        config.touch(mode=0o600)  # it holds the client secret
        config.write_text(json.dumps({
            "port": self.port,
            "client": {"client_id": self.client_id, "client_secret": self.client_secret,
                       "redirect_uris": list(self.redirect_uris)},
            "users": {user.login: user.claims() for user in self.users}}))
        self._stderr = open(folder / "stderr", "w+b")  # noqa: SIM115 - closed by stop()
        stalls = []
        for _ in range(START_ATTEMPTS):
            self._process = subprocess.Popen(
                [node, str(PROVIDER_DIR / "provider.mjs"), str(config)], cwd=PROVIDER_DIR,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
            assert self._process.stdout is not None
            try:
                line = _read_line(self._process.stdout, time.monotonic() + self.start_timeout)
                break
            except TimeoutError:
                # Seen twice in full runs on a loaded machine: node printed nothing at all for
                # 30 s, and the next start took half a second. Start it once more, and keep
                # where the stalled one was for the message.
                stalls.append(_where(self._process.pid))
                self._process.kill()
                self._process.wait(timeout=10)
                self._process.stdout.close()
        else:
            self._process = None
            self._fail(f"printed no ready line within {self.start_timeout:g} s, "
                       f"{START_ATTEMPTS} times ({'; '.join(stalls)})")
        if not line:
            self._process.wait(timeout=10)
            self._fail(f"exited {self._process.returncode} before it was ready")
        self.issuer = json.loads(line)["issuer"]
        return self

    def _fail(self, reason: str) -> NoReturn:
        assert self._stderr is not None
        self._stderr.seek(0)
        output = self._stderr.read()[-3000:].decode(errors="replace")
        self.stop()
        raise Unavailable(f"oidc-provider {reason}:\n{output}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rotate_keys(self) -> str:
        """Sign from now on with a new key, published first in the JWKS beside the previous one;
        returns the new key's ``kid``."""
        request = urllib.request.Request(f"{self.issuer}/rotate-keys", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read(4096))["kid"])

    def authorization_url(self, redirect_uri: str, *, code_challenge: str, state: str,
                          nonce: str, scope: str = "openid email groups") -> str:
        query = {"response_type": "code", "client_id": self.client_id,
                 "redirect_uri": redirect_uri, "scope": scope, "state": state, "nonce": nonce,
                 "code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{self.issuer}/auth?{urlencode(query)}"

    def discovery(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.discovery_url, timeout=30) as response:
            return dict(json.loads(response.read(1 << 20)))

    def code_flow(self, browser: Browser, user: User, *, nonce: str,
                  scope: str = "openid email groups") -> dict[str, Any]:
        """What the token endpoint answers once ``browser`` signed ``user`` in through an
        authorization code flow with PKCE to a loopback redirect (``id_token`` among it)."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        with CallbackServer() as callback:
            browser.sign_in(self.authorization_url(
                callback.redirect_uri, code_challenge=challenge, state=state, nonce=nonce,
                scope=scope), user)
            answer = callback.wait()
        if answer.get("state") != state or "code" not in answer:
            raise AssertionError(f"the authorization response is not a code for this state: "
                                 f"{sorted(answer)}")
        form = urlencode({"grant_type": "authorization_code", "code": answer["code"],
                          "redirect_uri": callback.redirect_uri, "code_verifier": verifier})
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        request = urllib.request.Request(
            self.discovery()["token_endpoint"], data=form.encode(),
            headers={"authorization": f"Basic {basic}",
                     "content-type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read(1 << 20)))


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        if url.path != "/callback" or self.server.received.is_set() or len(self.path) > 8192:
            self.send_response(404)
            self.end_headers()
            return
        self.server.query = dict(parse_qsl(url.query))
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"signed in; you may close this window\n")
        self.server.received.set()

    def log_message(self, *args: object) -> None:
        pass


class _CallbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    received: threading.Event
    query: dict[str, str]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a browser that closed its tab mid-answer (the favicon) is no error of the flow


class CallbackServer:
    """A redirect target on 127.0.0.1 (a free port) that keeps the query of the first request
    to ``/callback`` and answers it with a short page."""

    def __init__(self) -> None:
        self._server = _CallbackHTTPServer(("127.0.0.1", 0), _CallbackHandler)
        self._server.received = threading.Event()
        self._server.query = {}
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def wait(self, timeout: float = 30) -> dict[str, str]:
        """The callback's query, once it arrived."""
        if not self._server.received.wait(timeout):
            raise TimeoutError(f"nothing reached {self.redirect_uri} within {timeout:g} s")
        return self._server.query

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class Browser:
    """Debian's Chromium, headless, driven by Playwright; each sign-in in a fresh context (no
    cookies from an earlier one), so the provider always asks to sign in and to consent."""

    def __init__(self, timeout: float = 30) -> None:
        self.timeout = timeout
        self._playwright: Any = None
        self._browser: Any = None

    def __enter__(self) -> Self:
        chromium = shutil.which("chromium")
        if chromium is None:
            raise Unavailable(f"Chromium is not installed ({INSTALL_HINT}: apt-get install "
                              "chromium)")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise Unavailable(f"playwright is not installed ({INSTALL_HINT}): {exc}") from None
        try:
            self._playwright = sync_playwright().start()
        except Exception as exc:  # its driver (Node.js inside the wheel) did not start
            raise Unavailable(f"Playwright could not start: {exc!r}") from None
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=chromium, headless=True, timeout=self.timeout * 1000)
        except Exception as exc:  # Playwright's Error carries Chromium's own output
            self._playwright.stop()
            raise Unavailable(f"Chromium ({chromium}) could not start: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._browser.close()
        self._playwright.stop()

    def sign_in(self, authorization_url: str, user: User, password: str = "any password") -> str:
        """Open ``authorization_url``, sign in as ``user``, consent, and return the URL the
        browser was redirected to once it reached the request's ``redirect_uri`` (whose server
        has then answered)."""
        query = dict(parse_qsl(urlsplit(authorization_url).query))
        redirect_uri = query["redirect_uri"]
        context = self._browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(self.timeout * 1000)
            page.goto(authorization_url)
            page.fill("input[name=login]", user.login)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            # a fresh context has no grant yet: the provider asks for consent
            page.locator("input[name=prompt][value=consent]").wait_for(state="attached")
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: url.startswith(redirect_uri))
            page.wait_for_load_state()
            return str(page.url)
        finally:
            context.close()
