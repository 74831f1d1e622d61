"""The Falcon application: step-ca's routes, mounted at ``/x`` and ``/1.0/x``."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, TextIO

import falcon
import orjson

from stepca.authority import Authority
from stepca.errors import NotFound, PayloadTooLarge, StepCAError
from stepca.logs import escape
from stepca.resources import certificates, info, provisioners, renew, revocation_lists, revoke, sign

__all__ = ["create_app"]

log = logging.getLogger("stepca.app")
access_log = logging.getLogger("stepca.access")


def create_app(authority: Authority, *, max_request_bytes: int = 64 * 1024,
               access_log: bool = False) -> falcon.App:
    middleware: list[Any] = [RequestLimits(max_request_bytes)]
    if access_log:
        middleware.insert(0, AccessLog())
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # orjson: a tenth of the stdlib's CPU for a certificate chain (docs/decisions/0008)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=orjson.dumps, loads=orjson.loads)
    app.add_error_handler(StepCAError, _render_error)
    app.add_error_handler(falcon.HTTPError, _render_http_error)
    app.add_error_handler(Exception, _render_unexpected)
    app.add_sink(_not_found)

    routes: dict[str, Any] = {
        "/health": info.Health(),
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
        _mount(app, path, resource)
        _mount(app, f"/1.0{path}", resource)
    app.add_route("/re-sign", routes["/renew"])  # step-ca's legacy alias
    _mount_ocsp(app, revocation_lists.OCSP(authority))
    return app


def create_insecure_app(authority: Authority, *, access_log: bool = False) -> falcon.App:
    """What ``insecureAddress`` serves over plain HTTP: the CRL and OCSP, nothing else."""
    app = falcon.App(middleware=[AccessLog()] if access_log else [])
    app.add_error_handler(StepCAError, _render_error)
    app.add_error_handler(falcon.HTTPError, _render_http_error)
    app.add_sink(_not_found)
    crl = revocation_lists.CRL(authority)
    _mount(app, "/crl", crl)
    _mount(app, "/1.0/crl", crl)
    _mount_ocsp(app, revocation_lists.OCSP(authority))
    return app


def _mount_ocsp(app: falcon.App, ocsp: revocation_lists.OCSP) -> None:
    app.add_route("/ocsp", ocsp)
    # GET requests put base64 (which may contain "/") after the prefix: a sink takes it whole.
    app.add_sink(ocsp.on_get_request, prefix="/ocsp/")


def _mount(app: falcon.App, path: str, resource: Any) -> None:
    if hasattr(resource, "on_get") and not hasattr(resource, "on_head"):
        resource.on_head = resource.on_get  # step-ca answers HEAD on every GET route
    app.add_route(path, resource)


class AccessLog:
    """One line per request on stderr, shaped like every other log line (see
    ``stepca.logs.configure_logging``), with every value the client sent escaped, and silenced
    the same way, through the level of the ``stepca.access`` logger. Written directly: a ``logging`` record cost ~6% of an issuance's
    CPU in a loaded server, this about a fifth of that (docs/decisions/0009)."""

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
        target = escape(env.get("RAW_URI") or req.relative_uri)
        protocol = escape(env.get("SERVER_PROTOCOL", "HTTP/1.1"))
        (self._stream or sys.stderr).write(
            f"{logging.Formatter.default_msec_format % (text, (now - second) * 1000)} INFO "
            f"{access_log.name}: {escape(req.remote_addr)} "
            f'"{escape(req.method)} {target} {protocol}" {resp.status_code} '
            f"{len(body or b'')} {elapsed:.0f}ms pid={os.getpid()}\n")


class RequestLimits:
    """Refuse oversized bodies before anything reads them."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.max_body = self.max_bytes
        if req.content_length is not None and req.content_length > self.max_bytes:
            raise PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")


def _error_body(status: int, message: str) -> str:
    return json.dumps({"status": status, "message": message})


def _render_error(req: falcon.Request, resp: falcon.Response, ex: StepCAError,
                  params: dict[str, Any]) -> None:
    if ex.status >= 500:
        log.error("%s %s: %s", req.method, req.path, ex.reason)
    else:
        log.info("%s %s refused (%d): %s", req.method, req.path, ex.status, ex.reason)
    resp.status = ex.status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = _error_body(ex.status, ex.message)


def _render_http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError,
                       params: dict[str, Any]) -> None:
    status = ex.status_code
    message = ex.description or ex.title or "error"
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = _error_body(status, message)


def _render_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception,
                       params: dict[str, Any]) -> None:
    if isinstance(ex, (StepCAError, falcon.HTTPError)):
        raise ex
    log.exception("%s %s: unexpected error", req.method, req.path)
    resp.status = 500
    resp.content_type = falcon.MEDIA_JSON
    resp.text = _error_body(500, "The certificate authority encountered an Internal Server "
                                 "Error. Please see the certificate authority logs for more info.")


def _not_found(req: falcon.Request, resp: falcon.Response, **kwargs: Any) -> None:
    raise NotFound("The requested resource could not be found. Please see the certificate "
                   "authority logs for more info.")
