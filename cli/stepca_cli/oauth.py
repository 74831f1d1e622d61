"""The OAuth 2.0 / OpenID Connect authorization code flow of ``step oauth``, also what an OIDC
provisioner's client runs for ``step ca token``/``step ca certificate``: one call, ``authorize``.

As step does it: the provider's endpoints from its discovery document (or step's built-in
``google``/``github``), PKCE S256 with a 64-character alphanumeric verifier, a 32-character
``state`` and a 64-hex-digit ``nonce``, a redirect to a loopback server (``http://127.0.0.1:<random
port>`` unless ``listen``/``listen_url`` say otherwise) and the system browser opened on the
authorization URL (Python's ``webbrowser``, which honours ``BROWSER``; ``STEP_OPEN_BROWSER=0``
only prints it). ``console`` prints the URL and reads the code, or the URL the browser was sent
to, from stdin instead. Checked here: ``state`` on the callback (a mismatch ends the flow) and
the ``nonce`` of the ID token's payload; the signature of the ID token is the CA's to verify.
The wait for the browser or the code ends after ``timeout`` (step's two minutes by default);
every request goes through the CLI's bounded HTTP client, with its deadlines (decision 0026)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import os
import secrets
import selectors
import socket
import socketserver
import string
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from stepca_cli import httpclient
from stepca_cli.errors import StepError

__all__ = ["DEFAULT_SCOPES", "DEFAULT_TIMEOUT", "OAuthError", "TokenResponse", "authorize"]

DEFAULT_SCOPES = ("openid", "email")
DEFAULT_TIMEOUT = 120.0  # step waits two minutes for the browser
DISCOVERY_LIMIT = 256 * 1024
TOKEN_LIMIT = 64 * 1024
LINE_LIMIT = 16 * 1024  # a pasted code or redirect URL
MAX_CONNECTIONS = 16  # browsers open a few speculative connections; no more are served at once
CONNECTION_TIMEOUT = 10.0  # the longest a callback connection may keep silent

# step's built-in providers (no discovery document is fetched for them)
_KNOWN = {
    "google": ("https://accounts.google.com/o/oauth2/v2/auth",
               "https://www.googleapis.com/oauth2/v4/token"),
    "github": ("https://github.com/login/oauth/authorize",
               "https://github.com/login/oauth/access_token"),
}
_WELL_KNOWN = "/.well-known/openid-configuration"
_ALPHANUMERIC = string.ascii_letters + string.digits
TIMED_OUT = "oauth command timed out, please try again"


class OAuthError(StepError):
    """The flow failed; the message is one line."""


@dataclass(frozen=True)
class TokenResponse:
    """What the token endpoint answered, in step's field order (``step oauth`` prints it)."""

    access_token: str = ""
    id_token: str = ""
    refresh_token: str = ""
    expires_in: int = 0
    token_type: str = ""
    scope: str = ""

    def to_json(self) -> str:
        """step's output: every field but an empty ``scope``, indented by two spaces."""
        fields = asdict(self)
        if not fields["scope"]:
            del fields["scope"]
        return json.dumps(fields, indent=2)


@dataclass(frozen=True)
class _Endpoints:
    authorization: str
    token: str
    basic_auth: bool  # the client authenticates with HTTP Basic, else in the form (step's way)


def authorize(*, provider: str, client_id: str, client_secret: str | None,
              scopes: Sequence[str] = DEFAULT_SCOPES, listen: str | None = None,
              listen_url: str | None = None, console: bool = False, prompt: str | None = None,
              auth_params: Sequence[str] = (), login_hint: str | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> TokenResponse:
    """Run the authorization code flow with ``provider`` (``google``, ``github``, an issuer URL
    or its discovery document's URL) for the client ``client_id`` and return the tokens.

    ``listen`` is ``host:port`` for the callback server (an empty host is 127.0.0.1, port 0 any
    free one; an OIDC provisioner's ``listenAddress``); ``listen_url`` the ``redirect_uri`` to
    send instead of the server's own URL; ``auth_params`` extra ``key=value`` query parameters
    (``authParams``); ``login_hint`` an email for the provider's sign-in page. Raises
    ``OAuthError`` (one line) when the flow fails or ``timeout`` seconds pass between opening the
    browser (or printing the URL) and the provider's answer; the ID token,
    when the provider sent one, carries this request's nonce."""
    if not client_id:
        raise OAuthError("flag '--client-id' is required")
    extra = _auth_params(auth_params)
    where = _listen_address(listen) if listen else None
    callback_path = "/"
    if listen_url:
        parts = urlsplit(listen_url)
        if not parts.scheme or not parts.netloc:
            raise OAuthError(f"invalid value '{listen_url}' for flag '--listen-url'")
        callback_path = parts.path or "/"
    endpoints = _endpoints(provider)
    flow = _Flow(endpoints, client_id, client_secret or "")

    def authorization_url() -> str:
        query = {"client_id": client_id, "redirect_uri": flow.redirect_uri,
                 "response_type": "code", "code_challenge_method": "S256",
                 "code_challenge": flow.challenge,
                 "scope": " ".join(scopes) or " ".join(DEFAULT_SCOPES),
                 **({"prompt": prompt} if prompt else {}), "state": flow.state,
                 "nonce": flow.nonce, **({"login_hint": login_hint} if login_hint else {})}
        return _with_query(endpoints.authorization, query, extra)

    if console:
        flow.redirect_uri = listen_url or _console_redirect(where)
        tokens = flow.manual(authorization_url(), timeout)
    else:
        with _CallbackServer(where, callback_path, flow) as server:
            flow.redirect_uri = listen_url or server.url
            server.start()
            _open_browser(authorization_url())
            tokens = server.wait(time.monotonic() + timeout)
    return tokens


# -- arguments -------------------------------------------------------------------------------------

def _auth_params(values: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, _, item = value.partition("=")
        if not key:
            raise OAuthError(f"invalid value '{value}' for flag '--auth-param'")
        pairs.append((key, item))
    return pairs


def _listen_address(listen: str) -> tuple[str, int]:
    """Go's ``net.SplitHostPort``, with step's default host."""
    host, colon, port = listen.rpartition(":")
    if not colon:
        raise OAuthError(f"invalid value '{listen}' for flag '--listen': missing port in "
                         "address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise OAuthError(f"invalid value '{listen}' for flag '--listen': too many colons in "
                         "address")
    if not port.isdigit() or int(port) > 65535:
        raise OAuthError(f"invalid value '{listen}' for flag '--listen': invalid port")
    return host or "127.0.0.1", int(port)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _console_redirect(where: tuple[str, int] | None) -> str:
    """Where the browser is sent when nothing listens: its address bar then shows the code."""
    if where is None or not where[1]:
        return f"http://{_url_host(where[0]) if where else '127.0.0.1'}"
    return f"http://{_url_host(where[0])}:{where[1]}"


def _with_query(url: str, query: dict[str, str], extra: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    pairs = [*parse_qs(parts.query, keep_blank_values=True).items()]
    flat = [(k, v) for k, values in pairs for v in values] + list(query.items()) + extra
    return urlunsplit(parts._replace(query=urlencode(flat)))


# -- the provider ----------------------------------------------------------------------------------

def _check_provider(provider: str) -> None:
    """step takes ``https://`` providers only; plain ``http://`` is allowed here to a loopback
    host (a provider on the same machine), never across a network."""
    parts = urlsplit(provider)
    if parts.scheme == "https" and parts.netloc:
        return
    if parts.scheme == "http" and httpclient.is_loopback(parts.hostname or ""):
        return
    raise OAuthError("use a valid provider: google, github, or the https:// URL of an OpenID "
                     "provider")


def _endpoints(provider: str) -> _Endpoints:
    if provider in _KNOWN:
        authorization, token = _KNOWN[provider]
        return _Endpoints(authorization, token, basic_auth=False)
    _check_provider(provider)
    parts = urlsplit(provider)
    path = parts.path
    if _WELL_KNOWN not in path:
        path = path.rstrip("/") + _WELL_KNOWN
    url = urlunsplit(parts._replace(path=path))
    answer = _request("GET", url, DISCOVERY_LIMIT, headers={"accept": "application/json"})
    if answer.status != 200:
        raise OAuthError(f"error retrieving {url}: {answer.status} {answer.reason}".rstrip())
    try:
        document = json.loads(answer.body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise OAuthError(f"error reading {url}: unsupported format")
    found = []
    for name in ("authorization_endpoint", "token_endpoint"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise OAuthError(f"missing or invalid '{name}' in provider metadata")
        found.append(value)
    # RFC 8414/OIDC Discovery: absent means client_secret_basic, the method every provider
    # must take; step always posts the secret, which a client registered for Basic is refused
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    basic = "client_secret_basic" in methods or "client_secret_post" not in methods
    return _Endpoints(found[0], found[1], basic_auth=basic)


def _request(method: str, url: str, limit: int, **kwargs: Any) -> httpclient.Response:
    try:
        return httpclient.request(method, url, limit=limit, **kwargs)
    except httpclient.TransportError as exc:
        raise OAuthError(str(exc)) from None


# -- the flow --------------------------------------------------------------------------------------

def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


class _Flow:
    """One authorization: its secrets, and the exchange of a code for tokens."""

    def __init__(self, endpoints: _Endpoints, client_id: str, client_secret: str) -> None:
        self.endpoints = endpoints
        self.client_id, self.client_secret = client_id, client_secret
        self.state = _random(_ALPHANUMERIC, 32)
        self.nonce = _random("0123456789abcdef", 64)
        self.verifier = _random(_ALPHANUMERIC, 64)
        digest = hashlib.sha256(self.verifier.encode()).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        self.redirect_uri = ""

    def answer(self, query: dict[str, list[str]]) -> TokenResponse | None:
        """The tokens for an authorization response's query; None when it carries neither a
        code nor an error (not the provider's answer: keep waiting)."""
        error = query.get("error", [""])[0]
        if error:
            described = query.get("error_description", [""])[0]
            raise OAuthError(f"Failed to authenticate: {_printable(error)}"
                             + (f" ({_printable(described)})" if described else ""))
        code, state = query.get("code", [""])[0], query.get("state", [""])[0]
        if not code or not state:
            return None
        if not secrets.compare_digest(state.encode(), self.state.encode()):
            raise OAuthError("Failed to authenticate: missing or invalid state")
        return self.exchange(code)

    def exchange(self, code: str) -> TokenResponse:
        form = {"code": code, "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                "grant_type": "authorization_code", "code_verifier": self.verifier}
        headers = {"content-type": "application/x-www-form-urlencoded",
                   "accept": "application/json"}
        if self.endpoints.basic_auth and self.client_secret:
            # RFC 6749 2.3.1: both are form-encoded before they are joined
            pair = f"{_form(self.client_id)}:{_form(self.client_secret)}"
            headers["authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
        elif self.client_secret:
            form["client_secret"] = self.client_secret
        answer = _request("POST", self.endpoints.token, TOKEN_LIMIT,
                          body=urlencode(form).encode(), headers=headers)
        try:
            document = json.loads(answer.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise OAuthError(f"Failed exchanging authorization code: the token endpoint "
                             f"answered {answer.status} {answer.reason}, not JSON")
        if document.get("error") or document.get("error_description") or answer.status != 200:
            error = _printable(str(document.get("error") or answer.status))
            described = _printable(str(document.get("error_description") or ""))
            raise OAuthError(f"Failed exchanging authorization code: {error}"
                             + (f". {described}" if described else ""))
        tokens = _token_response(document)
        if tokens.id_token:
            self._check_nonce(tokens.id_token)
        return tokens

    def _check_nonce(self, id_token: str) -> None:
        """The ID token must answer this authorization (OIDC Core 3.1.3.7): a code obtained
        for another one, injected into this flow, carries another nonce."""
        parts = id_token.split(".")
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (IndexError, ValueError, binascii.Error):
            raise OAuthError("the provider's ID token is not a JWT") from None
        nonce = payload.get("nonce") if isinstance(payload, dict) else None
        if not isinstance(nonce, str) or not secrets.compare_digest(
                nonce.encode(), self.nonce.encode()):
            raise OAuthError("the provider's ID token does not carry this request's nonce")

    def manual(self, authorization_url: str, timeout: float) -> TokenResponse:
        """``--console``: the person opens the URL anywhere and pastes back the code or the URL
        the browser was sent to (the page will not load: nothing listens there)."""
        _say(f"Open a local web browser and visit:\n\n{authorization_url}\n")
        sys.stderr.write("Enter the verification code, or the URL your browser was sent to: ")
        sys.stderr.flush()
        line = _read_line(time.monotonic() + timeout).strip()
        if not line:
            raise OAuthError("no verification code was entered")
        if "://" in line:
            tokens = self.answer(_parse_query(urlsplit(line).query))
            if tokens is None:
                raise OAuthError("the URL carries no code and no state")
            return tokens
        return self.exchange(line)


def _parse_query(query: str) -> dict[str, list[str]]:
    """An authorization response's parameters; a query of more than 50 is none of them."""
    try:
        return parse_qs(query, max_num_fields=50)
    except ValueError:
        return {}


def _form(value: str) -> str:
    return urlencode({"": value})[1:]


def _token_response(document: dict[str, Any]) -> TokenResponse:
    def text(name: str) -> str:
        value = document.get(name)
        return value if isinstance(value, str) else ""

    expires = document.get("expires_in")
    expires_in = expires if type(expires) is int else 0  # not a bool, nor JSON's Infinity
    return TokenResponse(access_token=text("access_token"), id_token=text("id_token"),
                         refresh_token=text("refresh_token"), expires_in=expires_in,
                         token_type=text("token_type"), scope=text("scope"))


def _printable(text: str, limit: int = 200) -> str:
    """Provider or browser input in one line: control characters escaped, length bounded."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _read_line(deadline: float) -> str:
    """One line from stdin (at most ``LINE_LIMIT`` bytes) before ``deadline``."""
    fd = sys.stdin.fileno()
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise OAuthError(TIMED_OUT)
            chunk = os.read(fd, LINE_LIMIT + 1 - len(data))
            if not chunk:
                break
            data += chunk
            if len(data) > LINE_LIMIT:
                raise OAuthError(f"the line entered is longer than {LINE_LIMIT} bytes")
    return data.split(b"\n", 1)[0].decode(errors="replace")


def _open_browser(url: str) -> None:
    """The system browser, as ``webbrowser`` finds it (``BROWSER`` first); its output goes to
    stderr, since stdout carries the token."""
    if os.environ.get("STEP_OPEN_BROWSER") == "0":
        _say(url)
        return
    import webbrowser

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        try:
            opened = webbrowser.open(url)
        except (webbrowser.Error, OSError):
            opened = False
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    if opened:
        _say(f"Your default web browser has been opened to visit:\n\n{url}\n")
    else:
        _say(f"Cannot open a web browser on your platform.\n\nOpen a local web browser and "
             f"visit:\n\n{url}\n")


# -- the loopback callback server ------------------------------------------------------------------

_PAGE = ("<!doctype html><html lang=\"en-US\"><head><meta charset=\"utf-8\"><title>{title}"
         "</title></head><body style=\"font-family: sans-serif; text-align: center; "
         "margin-top: 3em\"><p><strong>{title}</strong></p><p>{text}</p></body></html>")


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    timeout = CONNECTION_TIMEOUT  # http.server applies it to the connection's socket

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if parts.path != self.server.path or len(self.path) > LINE_LIMIT:
            self.page(404, "Not Found", "")
            return
        self.server.take(self, _parse_query(parts.query))

    def do_OPTIONS(self) -> None:  # noqa: N802 - step answers a preflight with 200
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def page(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # the flow reports what matters on stderr itself


class _CallbackServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Serves the redirect target until one authorization response settled the flow, with at
    most ``MAX_CONNECTIONS`` connections at once, each bounded by ``CONNECTION_TIMEOUT``;
    http.server bounds the request line and headers (64 KiB a line, 100 headers)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, where: tuple[str, int] | None, path: str, flow: _Flow) -> None:
        host, port = where or ("127.0.0.1", 0)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.path, self.flow = path, flow
        self.where = f"{_url_host(host)}:{port}"
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._settled = threading.Event()
        self._lock = threading.Lock()
        self._taken = False
        self._outcome: TokenResponse | OAuthError | None = None
        self._thread: threading.Thread | None = None
        try:
            super().__init__((host, port), _CallbackHandler)
        except OSError as exc:
            raise OAuthError(f"error listening on {self.where}: "
                             f"{exc.strerror or exc}") from None
        self.url = f"http://{_url_host(host)}:{self.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.2,), daemon=True)
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self.shutdown()
        self.server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser that dropped a connection is no failure of the flow

    def take(self, handler: _CallbackHandler, query: dict[str, list[str]]) -> None:
        """The first authorization response settles the flow; nothing after it is heard."""
        with self._lock:
            if self._taken:
                handler.page(409, "OAuth Request Already Received", "")
                return
            self._taken = True
        outcome: TokenResponse | OAuthError | None
        try:
            outcome = self.flow.answer(query)
        except OAuthError as exc:
            outcome = exc
        if outcome is None:
            with self._lock:
                self._taken = False
            _say(f"Invalid request received: {self.url}{_printable(handler.path)}\n"
                 "You may have an app or browser plugin that needs to be turned off")
            handler.page(400, "OAuth Request Unsuccessful", "400 bad request")
            return
        self._outcome = outcome
        try:  # settled even when the browser is gone before its page is written
            if isinstance(outcome, OAuthError):
                handler.page(400, "OAuth Request Unsuccessful", str(outcome))
            else:
                handler.page(200, "OAuth Request Successful",
                             "Look for the token on the command line.")
        finally:
            self._settled.set()

    def wait(self, deadline: float) -> TokenResponse:
        settled = self._settled.wait(max(0.0, deadline - time.monotonic()))
        if not settled and self._taken:  # the answer came in time; its exchange is under way
            settled = self._settled.wait(httpclient.CONNECT_TIMEOUT + httpclient.READ_TIMEOUT)
        if not settled:
            raise OAuthError(TIMED_OUT)
        outcome = self._outcome
        if isinstance(outcome, OAuthError):
            raise outcome
        assert outcome is not None
        return outcome

