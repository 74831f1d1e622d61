"""The Falcon application: step-ca's routes, mounted at ``/x`` and ``/1.0/x``."""

from __future__ import annotations

import contextvars
import logging
import os
import re
import secrets
import sys
import time
from typing import Any, TextIO
from urllib.parse import quote_from_bytes, unquote_to_bytes

import falcon

from stepca.authority import Authority
from stepca.errors import InternalError, PayloadTooLarge, ServiceUnavailable, StepCAError
from stepca.logs import (begin_request, end_request, escape, iso_time, json_line, json_lines,
                         request_fields, text_fields)
from stepca.resources import (certificates, info, provisioners, render_json, renew,
                              revocation_lists, revoke, sign)
from stepca.store import StoreUnavailable

__all__ = ["create_app", "create_insecure_app", "route_of"]

log = logging.getLogger("stepca.app")
access_log = logging.getLogger("stepca.access")


def create_app(authority: Authority, *, max_request_bytes: int = 64 * 1024,
               access_log: bool = False, metrics: Any = None) -> falcon.App:
    """``metrics``: a middleware that counts each request (``stepca.metrics.RequestMetrics``),
    or None."""
    app = _falcon_app(_observers(authority, access_log, metrics)
                      + [ChiRouting(), RequestLimits(max_request_bytes)])

    routes: dict[str, Any] = {
        "/health": info.Health(authority),
        "/version": info.Version(authority),
        "/root/{sha}": certificates.Root(authority),
        "/roots": certificates.Roots(authority),
        "/roots.pem": certificates.RootsPEM(authority),
        "/intermediates": certificates.Intermediates(authority),
        "/intermediates.pem": certificates.IntermediatesPEM(authority),
        "/federation": certificates.Federation(authority),
        "/provisioners": provisioners.Provisioners(authority),
        "/provisioners/{kid}/encrypted-key": provisioners.EncryptedKey(authority),
        "/sign": sign.Sign(authority),
        "/renew": renew.Renew(authority),
        "/rekey": renew.Rekey(authority),
        "/revoke": revoke.Revoke(authority),
        "/crl": revocation_lists.CRL(authority),
    }
    for path, resource in routes.items():
        app.add_route(path, resource)
        app.add_route(f"/1.0{path}", resource)
    app.add_route("/re-sign", routes["/renew"])  # step-ca's legacy alias
    _mount_ocsp(app, revocation_lists.OCSP(authority))
    return app


def create_insecure_app(authority: Authority, *, access_log: bool = False,
                        metrics: Any = None) -> falcon.App:
    """What ``insecureAddress`` serves over plain HTTP: the CRL and OCSP, nothing else."""
    app = _falcon_app(_observers(authority, access_log, metrics) + [ChiRouting()])
    crl = revocation_lists.CRL(authority)
    app.add_route("/crl", crl)
    app.add_route("/1.0/crl", crl)
    _mount_ocsp(app, revocation_lists.OCSP(authority))
    return app


def _observers(authority: Authority, access_log: bool, metrics: Any) -> list[Any]:
    # first: their process_response runs last, when the answer is known; the request id's
    # last of all, so the others' lines carry it
    observers: list[Any] = [RequestId(authority.config.logger.trace_header)]
    if access_log:
        observers.append(AccessLog())
    if metrics is not None:
        observers.append(metrics)
    return observers


class _App(falcon.App):  # type: ignore[misc]
    """Each request in a context of its own: the log fields it gathers (``stepca.logs``) end
    with it, even when something stops it before its ``process_response``."""

    def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
        return contextvars.Context().run(super().__call__, env, start_response)


def _falcon_app(middleware: list[Any]) -> falcon.App:
    # No default media type: every answer sets its own (resources.render_json), and chi's
    # 405 has none at all.
    app = _App(middleware=middleware, media_type=None)
    app.req_options.strip_url_path_trailing_slash = False  # chi: /health/ is not /health
    app.add_error_handler(Exception, _render_unexpected)
    app.add_error_handler(falcon.HTTPError, _render_http_error)
    app.add_error_handler(StepCAError, _render_error)
    app.add_error_handler(RouteNotFound, _render_route_not_found)
    app.add_error_handler(RouteMethodNotAllowed, _render_method_not_allowed)
    app.add_sink(_no_route)
    return app


def _mount_ocsp(app: falcon.App, ocsp: revocation_lists.OCSP) -> None:
    app.add_route("/ocsp", ocsp)
    # GET requests put base64 (which may contain "/") after the prefix: a sink takes it whole.
    app.add_sink(ocsp.on_get_request, prefix="/ocsp/")


# The methods chi knows (mux.go's methodMap); any other gets 405 on every path.
CHI_METHODS = frozenset(("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT",
                         "TRACE"))
# What Go's net/url leaves unescaped in a path besides letters, digits and "-._~".
_GO_PATH_SAFE = "$&+,/:;=@"


class RouteNotFound(Exception):
    """No route matches: answered as Go's ``http.NotFound``, which chi uses."""


class RouteMethodNotAllowed(Exception):
    """The route exists without this method, or chi does not know the method."""


class ChiRouting:
    """Route as step-ca's router (chi 5.0.7 in step-ca 0.19) does, not as Falcon would: no
    trailing slash stripped, no leading slashes folded, no empty path parameter, no method
    answered that the resource lacks (HEAD and OPTIONS included), and a path that Go would not
    escape the way it was sent is routed as sent: ``/health%2F`` and ``/h%65alth`` are not
    ``/health``."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method not in CHI_METHODS:
            raise RouteMethodNotAllowed()
        raw = req.env.get("RAW_URI", "")
        if "%" in raw:  # else the decoded path is the path as sent
            raw_path = raw.partition("?")[0]
            # Go keeps the raw path (URL.RawPath), and chi routes on it, when re-escaping the
            # decoded one does not give it back.
            if raw_path.startswith("/") and raw_path != quote_from_bytes(
                    unquote_to_bytes(raw_path), _GO_PATH_SAFE):
                req.path = raw_path
        if req.path.startswith("//"):  # Falcon's router would ignore the extra slashes
            raise RouteNotFound()

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if "" in params.values():  # chi never matches an empty parameter: /root/ is no route
            raise RouteNotFound()
        if not hasattr(resource, _RESPONDERS[req.method]):
            raise RouteMethodNotAllowed()  # before Falcon's own OPTIONS and 405 answers


_RESPONDERS = {method: f"on_{method.lower()}" for method in CHI_METHODS}


# What a request id sent by a client may be: UUIDs, xids, AWS trace ids ("Root=1-...;...")
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:;=+/@-]{1,128}")


def route_of(req: falcon.Request) -> str:
    """The route template that served ``req`` without step-ca's ``/1.0`` prefix (``/root/{sha}``,
    never the path as sent), ``/ocsp/{request}`` for OCSP over GET, ``unmatched`` for no route:
    a label of bounded cardinality whatever clients send."""
    template = req.uri_template
    if template:
        return template[4:] if template.startswith("/1.0/") else template
    if req.path.startswith("/ocsp/"):
        return "/ocsp/{request}"
    return "unmatched"


class RequestId:
    """Every request has an id: the client's ``X-Request-Id`` (else the ``logger.traceHeader``
    one) when it is sane, else a new one; every line logged while it is served carries it
    (``stepca.logs``) and the answer echoes it in ``X-Request-Id``, as newer step-ca versions
    do (0.19 reads the trace header but echoes nothing)."""

    def __init__(self, trace_header: str = "X-Smallstep-Id") -> None:
        self.trace_header = trace_header

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        sent = req.get_header("X-Request-Id") or req.get_header(self.trace_header)
        request_id = (sent if sent is not None and SANE_REQUEST_ID.fullmatch(sent)
                      else secrets.token_hex(10))
        req.context.request_id = request_id
        req.context.request_token = begin_request(request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        resp.set_header("X-Request-Id", req.context.request_id)
        end_request(req.context.request_token)


class AccessLog:
    """One line per request on stderr, shaped like every other log line (see
    ``stepca.logs.configure_logging``: text, or JSON) with the request's fields, every value the
    client sent escaped, and silenced the same way, through the level of the ``stepca.access``
    logger. Written directly: a ``logging`` record cost ~6% of an issuance's CPU in a loaded
    server, this about a fifth of that (docs/decisions/0009)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._stamp = (-1, "")  # (second, its text): one tuple, so threads swap it whole

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        body = resp.render_body()  # rendered once: Falcon reuses it for the response
        elapsed = (time.perf_counter() - req.context.get("started", time.perf_counter())) * 1e3
        now = time.time()
        second, text = self._stamp
        if int(now) != second:
            second = int(now)
            text = time.strftime(logging.Formatter.default_time_format, time.localtime(second))
            self._stamp = (second, text)
        env = req.env
        # the request target as sent (RAW_URI keeps %0A encoded), escaped all the same
        target = env.get("RAW_URI") or req.relative_uri
        protocol = env.get("SERVER_PROTOCOL", "HTTP/1.1")
        if json_lines():
            line = json_line({
                "time": iso_time(now), "level": "INFO", "logger": access_log.name,
                "remote_address": req.remote_addr, "method": req.method, "uri": target,
                "protocol": protocol, "status": resp.status_code, "size": len(body or b""),
                "duration_ms": round(elapsed, 3), "pid": os.getpid(), **(request_fields() or {})})
        else:
            line = (f"{logging.Formatter.default_msec_format % (text, (now - second) * 1000)} "
                    f"INFO {access_log.name}: {escape(req.remote_addr)} "
                    f'"{escape(req.method)} {escape(target)} {escape(protocol)}" '
                    f"{resp.status_code} {len(body or b'')} {elapsed:.0f}ms pid={os.getpid()}"
                    f"{text_fields(request_fields())}\n")
        (self._stream or sys.stderr).write(line)


class RequestLimits:
    """Refuse oversized bodies before anything reads them."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.max_body = self.max_bytes
        if req.content_length is not None and req.content_length > self.max_bytes:
            raise PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")


def _render_error(req: falcon.Request, resp: falcon.Response, ex: StepCAError,
                  params: dict[str, Any]) -> None:
    if ex.status >= 500:
        log.error("%s %s: %s", req.method, req.path, ex.reason)
    else:
        log.info("%s %s refused (%d): %s", req.method, req.path, ex.status, ex.reason)
    if isinstance(ex, ServiceUnavailable):
        resp.set_header("Retry-After", str(ex.retry_after))
    if isinstance(ex, StoreUnavailable):
        req.context.store_unavailable = True  # counted by stepca.metrics
    render_json(resp, {"status": ex.status, "message": ex.message}, ex.status)


def _render_http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError,
                       params: dict[str, Any]) -> None:
    if isinstance(ex, falcon.HTTPMethodNotAllowed):
        _render_method_not_allowed(req, resp, ex, params)
        return
    status = ex.status_code
    render_json(resp, {"status": status, "message": ex.description or ex.title or "error"},
                status)


def _render_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception,
                       params: dict[str, Any]) -> None:
    log.exception("%s %s: unexpected error", req.method, req.path)
    render_json(resp, {"status": 500, "message": InternalError().message}, 500)


def _render_route_not_found(req: falcon.Request, resp: falcon.Response, ex: Exception,
                            params: dict[str, Any]) -> None:
    # Go's http.NotFound, byte for byte
    resp.status = 404
    resp.content_type = "text/plain; charset=utf-8"
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.data = b"404 page not found\n"


def _render_method_not_allowed(req: falcon.Request, resp: falcon.Response, ex: Exception,
                               params: dict[str, Any]) -> None:
    # chi's answer: the status alone, no body, no Allow and no Content-Type header
    resp.status = 405
    resp.data = b""


def _no_route(req: falcon.Request, resp: falcon.Response, **kwargs: Any) -> None:
    raise RouteNotFound()
