"""Thin Falcon resources: parse the request, call the ``Authority``, render the answer."""

from __future__ import annotations

from typing import Any

import falcon
import orjson

from stepca.errors import BadRequest, PayloadTooLarge

# Go's json.Encoder, which writes step-ca's bodies, escapes these; orjson leaves them as they are.
_GO_ESCAPES = ((b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e"))
_GO_LINE_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def json_body(value: Any) -> bytes:
    """``value`` as step-ca writes a body (Go's ``json.Encoder``): compact, keys in the order
    given, ``<``, ``>``, ``&`` and U+2028/U+2029 escaped, and a newline at the end. orjson, not
    the standard library: a tenth of the CPU for a certificate chain (docs/decisions/0008)."""
    data = orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    for raw, escaped in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    if not data.isascii():
        for raw, escaped in _GO_LINE_SEPARATORS:
            data = data.replace(raw, escaped)
    return data


def render_json(resp: falcon.Response, value: Any, status: int = 200) -> None:
    """Answer ``value`` as JSON with ``status``, as step-ca's ``render.JSONStatus`` does; error
    bodies take the same path (``stepca.app``)."""
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json_body(value)


def read_json(req: falcon.Request) -> dict[str, Any]:
    """The request body as a JSON object; ``BadRequest`` for anything else."""
    limit = req.context.get("max_body", 64 * 1024)
    try:
        body = req.bounded_stream.read(limit + 1)
    except OSError:
        raise BadRequest("error reading request body") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    try:
        data = orjson.loads(body) if body else None  # strict RFC 8259: UTF-8, no NaN
    except orjson.JSONDecodeError:
        raise BadRequest("error decoding json") from None
    if not isinstance(data, dict):
        raise BadRequest("error decoding json: the body must be a JSON object")
    return data


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value
