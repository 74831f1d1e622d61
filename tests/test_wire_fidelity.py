"""What step-ca 0.19 sends, byte for byte where a client or script could tell: routing as its
router (chi) does it, Go's 404 and chi's 405, the generic NotFound message, and JSON bodies as
Go's encoder writes them. Each expectation was read off smallstep's own step-ca 0.19."""

from __future__ import annotations

import json
import logging

import pytest

from stepca.logs import LineFormatter
from stepca.gojson import json_body
from stepca.testing.http import call_wsgi, exchange, running_ca

GO_NOT_FOUND = (404, {"content-type": "text/plain; charset=utf-8",
                      "x-content-type-options": "nosniff", "content-length": "19"},
                b"404 page not found\n")
CHI_NOT_ALLOWED = (405, {"content-length": "0"}, b"")
NOT_FOUND_MESSAGE = ("The requested resource could not be found. Please see the certificate "
                     "authority logs for more info.")
NOT_FOUND_JSON = json.dumps({"status": 404, "message": NOT_FOUND_MESSAGE},
                            separators=(",", ":")).encode() + b"\n"


def json_answer(status: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json", "content-length": str(len(body))}, body


# (method, path as decoded, request target as sent, answer)
ROUTES = [
    ("GET", "/health", "/health", json_answer(200, b'{"status":"ok"}\n')),
    ("GET", "/1.0/health", "/1.0/health", json_answer(200, b'{"status":"ok"}\n')),
    ("GET", "/health", "/health?x=1", json_answer(200, b'{"status":"ok"}\n')),
    ("GET", "/health/", "/health/", GO_NOT_FOUND),
    ("GET", "//health", "//health", GO_NOT_FOUND),
    ("GET", "/1.0//health", "/1.0//health", GO_NOT_FOUND),
    ("GET", "/health/", "/health%2F", GO_NOT_FOUND),  # chi routes on the raw path here
    ("GET", "/health", "/h%65alth", GO_NOT_FOUND),  # not Go's escaping: the raw path again
    ("GET", "/health?", "/health%3F", GO_NOT_FOUND),
    ("GET", "/roots/", "/roots/", GO_NOT_FOUND),
    ("GET", "/roots.pem", "/roots%2Epem", GO_NOT_FOUND),
    ("GET", "/root/", "/root/", GO_NOT_FOUND),  # chi matches no empty parameter
    ("GET", "/1.0", "/1.0", GO_NOT_FOUND),
    ("GET", "/1.0/", "/1.0/", GO_NOT_FOUND),
    ("GET", "/nope", "/nope", GO_NOT_FOUND),
    ("POST", "/nope", "/nope", GO_NOT_FOUND),
    ("HEAD", "/nope", "/nope", (404, GO_NOT_FOUND[1], b"")),
    ("GET", "/root/abc/def", "/root/abc%2Fdef", json_answer(404, NOT_FOUND_JSON)),
    ("GET", "/root/abc def", "/root/abc%20def", json_answer(404, NOT_FOUND_JSON)),
    ("GET", "/provisioners/x/encrypted-key", "/provisioners/x/encrypted-key",
     json_answer(404, NOT_FOUND_JSON)),
    ("HEAD", "/health", "/health", CHI_NOT_ALLOWED),
    ("OPTIONS", "/health", "/health", CHI_NOT_ALLOWED),
    ("POST", "/health", "/health", CHI_NOT_ALLOWED),
    ("GET", "/sign", "/sign", CHI_NOT_ALLOWED),
    ("GET", "/1.0/revoke", "/1.0/revoke", CHI_NOT_ALLOWED),
    ("FOO", "/health", "/health", CHI_NOT_ALLOWED),  # a method chi does not know, anywhere
    ("PROPFIND", "/nope", "/nope", CHI_NOT_ALLOWED),
]


@pytest.mark.parametrize(("method", "path", "target", "answer"), ROUTES,
                         ids=[f"{m} {t}" for m, _, t, _ in ROUTES])
def test_routes_as_step_ca(stepca_ca, method, path, target, answer):
    assert call_wsgi(stepca_ca.client.app, method, path, raw_uri=target) == answer


def test_a_not_found_answer_is_generic_and_its_detail_is_logged_escaped(stepca_ca, caplog):
    wanted = "ab\ncd"  # a newline in the fingerprint must not start a log line of its own
    with caplog.at_level(logging.INFO, logger="stepca.app"):
        answer = call_wsgi(stepca_ca.client.app, "GET", f"/root/{wanted}",
                           raw_uri="/root/ab%0Acd")
    assert answer == json_answer(404, NOT_FOUND_JSON)
    [record] = [r for r in caplog.records if r.name == "stepca.app"]
    line = LineFormatter("%(message)s").format(record)
    assert line == 'GET /root/ab\\x0acd refused (404): root certificate with fingerprint ' \
                   '"ab\\x0acd" was not found'


def test_error_bodies_are_written_like_success_bodies(stepca_ca):
    response = stepca_ca.client.simulate_get("/provisioners", params={"limit": "<x&>"})
    # exactly step-ca 0.19's bytes: compact, status first, HTML characters escaped, a newline
    assert response.content == (b'{"status":400,"message":"The request could not be completed: '
                                b"limit '\\u003cx\\u0026\\u003e' is not an integer.\"}\n")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))


def test_json_bodies_are_go_encoder_output():
    assert json_body({"crt": "a\nb", "n": 1, "x": None}) == b'{"crt":"a\\nb","n":1,"x":null}\n'
    assert json_body({"m": "<a&b>\u2028\u2029é"}) == (
        '{"m":"\\u003ca\\u0026b\\u003e\\u2028\\u2029é"}\n'.encode())


# -- over TLS, against the real step-ca process ---------------------------------------------------

@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    with running_ca(tmp_path_factory.mktemp("wire")) as running:
        yield running


def request(method: str, target: str) -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


@pytest.mark.parametrize(("method", "target", "status", "content_type", "body"), [
    ("GET", "/health", 200, "application/json", b'{"status":"ok"}\n'),
    ("GET", "/health/", 404, "text/plain; charset=utf-8", b"404 page not found\n"),
    ("GET", "//health", 404, "text/plain; charset=utf-8", b"404 page not found\n"),
    ("GET", "/health%2F", 404, "text/plain; charset=utf-8", b"404 page not found\n"),
    ("GET", "/roots/", 404, "text/plain; charset=utf-8", b"404 page not found\n"),
    ("GET", "/root/00", 404, "application/json", NOT_FOUND_JSON),
    ("GET", "/sign", 405, None, b""),
    ("OPTIONS", "/1.0/health", 405, None, b""),
])
def test_step_ca_answers_as_smallstep_over_tls(ca, method, target, status, content_type, body):
    got_status, headers, got_body = exchange(ca, request(method, target))
    assert (got_status, headers.get("content-type"), got_body) == (status, content_type, body)
    assert int(headers["content-length"]) == len(body)
    assert "allow" not in headers
    if status == 404 and content_type.startswith("text/plain"):
        assert headers["x-content-type-options"] == "nosniff"
