"""Thin Falcon resources: parse the request, call the ``Authority``, render the answer."""

from __future__ import annotations

from typing import Any

import falcon
import orjson

from stepca.errors import BadRequest, PayloadTooLarge
from stepca.gojson import json_body

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
