"""docs/openapi.yaml is true: it documents exactly the routes the application serves, and
schemathesis, driving a real step-ca over HTTPS with data generated from the description (valid
and invalid), finds no server error, no undocumented status or content type, and no answer
that breaks its schema. Generation is derandomized with a fixed number of examples per
operation, so a run is reproducible and bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.inspect
import pytest
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from stepca.app import create_app
from stepca.testing import make_csr, make_token
from stepca.testing.http import RunningCA, running_ca

REPO = Path(__file__).resolve().parents[1]
DESCRIPTION = REPO / "docs" / "openapi.yaml"
SCHEMA = schemathesis.openapi.from_path(DESCRIPTION)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
EXAMPLES_PER_OPERATION = 50
# The one sink that serves a documented route (the other answers every unrouted path with 404).
SINKS = {"/ocsp/": "/ocsp/{request}"}
METHODS = frozenset(("get", "put", "post", "delete", "options", "head", "patch", "trace"))


@schemathesis.serializer("application/ocsp-request")
def _ocsp_request(ctx: Any, value: Any) -> bytes:
    # the description says "a string"; the generated one goes out as its UTF-8 bytes
    return value if isinstance(value, bytes) else str(value).encode()


def _documented() -> set[tuple[str, str]]:
    """(path, METHOD) for every operation, under each server its path item lists."""
    description = SCHEMA.raw_schema
    default = [s["url"] for s in description["servers"]]
    found = set()
    for path, item in description["paths"].items():
        for server in [s["url"] for s in item.get("servers", [])] or default:
            for method in METHODS.intersection(item):
                found.add((server.rstrip("/") + path, method.upper()))
    return found


def test_the_description_is_valid_openapi_3_1() -> None:
    assert SCHEMA.raw_schema["openapi"].startswith("3.1.")
    SCHEMA.validate()  # against the OpenAPI 3.1 schema; raises on the first error


def test_every_route_served_is_documented_and_nothing_else(stepca_ca: Any) -> None:
    app = create_app(stepca_ca.authority)
    served = {(route.path, method.method) for route in falcon.inspect.inspect_routes(app)
              for method in route.methods if not method.internal}
    served |= {(SINKS[sink.prefix], "GET") for sink in falcon.inspect.inspect_sinks(app)
               if sink.prefix in SINKS}
    assert ("/1.0/sign", "POST") in served and ("/ocsp/{request}", "GET") in served
    assert _documented() == served


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCA]:
    # CRL and OCSP on, so that their routes answer with content rather than 404
    with running_ca(tmp_path_factory.mktemp("openapi"),
                    ca_json={"crl": {"enabled": True}, "ocsp": {"enabled": True}}) as running:
        yield running


def _call(case: schemathesis.Case, ca: RunningCA, **transport: Any) -> schemathesis.Response:
    """The request over HTTPS to the running CA, its answer checked against the description."""
    return case.call_and_validate(base_url=f"https://127.0.0.1:{ca.port}", verify=str(ca.root),
                                  checks=CHECKS, timeout=10, **transport)


def _operations() -> list[tuple[str, str]]:
    return sorted((path, method.upper()) for path, item in SCHEMA.raw_schema["paths"].items()
                  for method in METHODS.intersection(item))


# Our own parametrization, not SCHEMA.parametrize(): under pytest-xdist, which scripts/test
# uses, schemathesis reports its per-operation subtests nowhere, and a failing one passed.
def _can_be_invalid(path: str, method: str) -> bool:
    """Whether a request to the operation can break its description: it takes a body or a
    query parameter (a path parameter is any text, and an operation without either has
    nothing to break)."""
    item = SCHEMA.raw_schema["paths"][path]
    operation = item[method.lower()]
    parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
    return "requestBody" in operation or any(p.get("in") == "query" for p in parameters)


def _cases() -> list[Any]:
    return [pytest.param(path, method, mode, id=f"{mode.value}-{method} {path}")
            for mode in schemathesis.GenerationMode for path, method in _operations()
            if mode is schemathesis.GenerationMode.POSITIVE or _can_be_invalid(path, method)]


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "method", "mode"), _cases())
def test_the_running_ca_answers_as_documented(path: str, method: str,
                                              mode: schemathesis.GenerationMode,
                                              ca: RunningCA) -> None:
    @given(case=SCHEMA[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION // 2, derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: schemathesis.Case) -> None:
        _call(case, ca)

    answers_as_documented()


def _case(path: str, method: str, **parts: Any) -> schemathesis.Case:
    return SCHEMA[path][method].Case(**parts)


@pytest.mark.e2e
def test_the_success_answers_match_their_schemas(ca: RunningCA, tmp_path: Path) -> None:
    # Random data cannot make a valid token, client certificate or fingerprint: these requests
    # reach the success answers, which the same checks hold to the description.
    found = [("/root/{sha}", {"sha": ca.pki.fingerprint}),
             ("/provisioners/{kid}/encrypted-key", {"kid": ca.pki.provisioner_kid})]
    for path, parameters in found:
        assert _call(_case(path, "GET", path_parameters=parameters), ca).status_code == 200

    subject = "openapi.example.com"
    csr, key = make_csr(subject)
    token = make_token(ca.pki, subject, audience=f"https://127.0.0.1:{ca.port}/1.0/sign")
    issued = _call(_case("/sign", "POST", body={"csr": csr, "ott": token},
                         media_type="application/json"), ca)
    assert issued.status_code == 201

    client_key = tmp_path / "client.key"
    client_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    client = tmp_path / "client.crt"
    client.write_text(issued.json()["crt"])
    renewed = _call(_case("/renew", "POST"), ca, cert=(str(client), str(client_key)))
    assert renewed.status_code == 201

    new_csr, _ = make_csr(subject)
    client.write_text(renewed.json()["crt"])
    rekeyed = _call(_case("/rekey", "POST", body={"csr": new_csr}, media_type="application/json"),
                    ca, cert=(str(client), str(client_key)))
    assert rekeyed.status_code == 201

    serial = x509.load_pem_x509_certificate(renewed.json()["crt"].encode()).serial_number
    revoked = _call(_case("/revoke", "POST", body={"serial": str(serial)},
                          media_type="application/json"), ca, cert=(str(client), str(client_key)))
    assert revoked.json() == {"status": "ok"}
