"""What an operator watches, through the real processes: Prometheus metrics summed over every
worker, request ids on every log line of a request (text or JSON lines), and a /health that
checks the store and the signing key."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from stepca.config import Config, ConfigError
from stepca.health import SIGNER_CHECK_SECONDS, HealthCheck, HealthCheckFailed
from stepca.testing import make_csr, make_token
from stepca.testing.http import RunningCA, read_response, running_ca, sign_body
from stepca.testing.process import free_port, run_step, wait_for
from stepca.x509util import fingerprint

pytestmark = pytest.mark.e2e

GENERATED_ID = re.compile(r"[0-9a-f]{20}")
ROUTES = {"/health", "/version", "/root/{sha}", "/roots", "/roots.pem", "/intermediates",
          "/intermediates.pem", "/federation", "/provisioners",
          "/provisioners/{kid}/encrypted-key", "/sign", "/renew", "/re-sign", "/rekey",
          "/revoke", "/crl", "/ocsp", "/ocsp/{request}", "unmatched"}


def step_env(ca: RunningCA, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return {**base, "STEPPATH": str(tmp_path / "step"),
            "STEP_CA_URL": f"https://127.0.0.1:{ca.port}", "STEP_ROOT": str(ca.root)}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def access_lines(logs: str) -> list[str]:
    return [line for line in logs.splitlines() if " INFO stepca.access: " in line]


def pid_of(line: str) -> int:
    return int(re.search(r" pid=(\d+)", line).group(1))  # type: ignore[union-attr]


def post(ca: RunningCA, path: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(f"https://127.0.0.1:{ca.port}{path}", data=body, verify=str(ca.root),
                         headers={"Content-Type": "application/json", **headers}, timeout=30)


# -- metrics --------------------------------------------------------------------------------------

def test_metrics_count_every_worker_by_route_provisioner_and_outcome(tmp_path: Path) -> None:
    metrics_port = free_port()
    folder = tmp_path / "metrics"
    folder.mkdir()
    ca_json = {"metrics": {"address": f"127.0.0.1:{metrics_port}", "directory": str(folder)}}
    with running_ca(tmp_path / "server", ca_json=ca_json, workers=2) as ca:
        # the counts live in a private folder of this start
        (private,) = folder.iterdir()
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        password = tmp_path / "password.txt"
        password.write_bytes(ca.pki.password + b"\n")
        env = step_env(ca, tmp_path)

        def step(*args: str) -> None:
            run_step(*args, env=env, cwd=tmp_path)

        step("ca", "certificate", "one.example", "one.crt", "one.key", "--password-file",
             str(password))
        # the worker that issued it exits; its counts must still be in the sums
        served = {pid_of(line) for line in access_lines(ca.process.logs())}
        before = ca.process.pids()
        for pid in served:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not served & set(ca.process.pids())
                 and len(ca.process.pids()) == len(before), "the workers to be replaced")
        step("ca", "certificate", "two.example", "two.crt", "two.key", "--password-file",
             str(password))
        step("ca", "renew", "--force", "two.crt", "two.key")
        one = x509.load_pem_x509_certificate((tmp_path / "one.crt").read_bytes())
        step("ca", "revoke", str(one.serial_number), "--password-file", str(password))
        replayed = sign_body(ca, "three.example")
        assert post(ca, "/1.0/sign", replayed).status_code == 201
        assert post(ca, "/1.0/sign", replayed).status_code == 401  # the provisioner's refusal
        csr, _ = make_csr("four.example")
        garbage = json.dumps({"csr": csr, "ott": "not.a.token"}).encode()
        assert post(ca, "/sign", garbage).status_code == 401  # no provisioner identified
        assert requests.get(f"https://127.0.0.1:{ca.port}/root/{'ab' * 32}",
                            verify=str(ca.root), timeout=30).status_code == 404

        samples = scrape(metrics_port)
        lines = access_lines(ca.process.logs())
        operations = "stepca_certificate_operations_total"
        name = ca.pki.provisioner_name
        assert value(samples, operations, operation="sign", provisioner=name,
                     outcome="success") == 3
        assert value(samples, operations, operation="sign", provisioner=name,
                     outcome="refused") == 1
        assert value(samples, operations, operation="sign", provisioner="",
                     outcome="refused") == 1
        assert value(samples, operations, operation="renew", provisioner=name,
                     outcome="success") == 1
        assert value(samples, operations, operation="revoke", provisioner=name,
                     outcome="success") == 1
        assert value(samples, "stepca_http_requests_total", route="/sign", method="POST",
                     status="201") == 3
        assert value(samples, "stepca_http_requests_total", route="/root/{sha}", method="GET",
                     status="404") == 1
        # every request any worker answered, the one that exited included, is counted once
        requests_counted = {labels: count for (metric, labels), count in samples.items()
                            if metric == "stepca_http_requests_total"}
        assert sum(requests_counted.values()) == len(lines)
        # the issuances before the exit and after it: two workers at least
        assert len({pid_of(line) for line in lines
                    if re.search(r'"POST (/1\.0)?/sign ', line)}) >= 2
        assert {dict(labels)["route"] for labels in requests_counted} <= ROUTES
        assert sum(count for (metric, labels), count in samples.items()
                   if metric == "stepca_http_request_duration_seconds_count") == len(lines)
        assert value(samples, "stepca_store_unavailable_total") == 0
        # the CA's own certificates: seconds until they expire
        for kind, path in (("root", "root_ca.crt"), ("intermediate", "intermediate_ca.crt")):
            cert = x509.load_pem_x509_certificate(
                (ca.pki.steppath / "certs" / path).read_bytes())
            left = value(samples, "stepca_ca_certificate_expiry_seconds", certificate=kind,
                         fingerprint=fingerprint(cert))
            expected = cert.not_valid_after_utc.timestamp() - time.time()
            assert 0 < left and abs(left - expected) < 3600, (kind, left, expected)
    assert list(folder.iterdir()) == []  # removed at exit


def test_metrics_keep_counting_across_a_reload(tmp_path: Path) -> None:
    metrics_port = free_port()
    ca_json = {"metrics": {"address": f"127.0.0.1:{metrics_port}"}}
    with running_ca(tmp_path, ca_json=ca_json) as ca:
        assert post(ca, "/1.0/sign", sign_body(ca, "before.example")).status_code == 201
        children = set(ca.process.pids()[1:])  # the worker and the metrics listener
        os.kill(ca.process.proc.pid, signal.SIGHUP)
        wait_for(lambda: "reloaded: 1 provisioner(s)" in ca.process.logs()
                 and not children & set(ca.process.pids())
                 and len(ca.process.pids()) == len(children) + 1, "new children")
        assert post(ca, "/1.0/sign", sign_body(ca, "after.example")).status_code == 201
        assert value(scrape(metrics_port), "stepca_certificate_operations_total",
                     operation="sign", provisioner=ca.pki.provisioner_name,
                     outcome="success") == 2


def test_the_metrics_block_is_checked() -> None:
    for block, problem in (
            ({"address": "127.0.0.1:9090", "adress": "x"},
             "metrics: unknown setting 'adress' (did you mean 'address'?)"),
            ({}, "metrics.address is required: host:port, e.g. 127.0.0.1:9090"),
            ({"address": "nowhere"}, "invalid address 'nowhere'"),
            ({"address": "127.0.0.1:9090", "directory": 3},
             "metrics.directory must be a folder's path")):
        with pytest.raises(ConfigError) as raised:
            Config.from_json(_minimal(metrics=block), path=Path("/x/config/ca.json"))
        assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
    config = Config.from_json(_minimal(), path=Path("/x/config/ca.json"))
    assert config.metrics is None and config.logger.format == "text"


def test_the_logger_block_is_checked() -> None:
    for block, problem in (
            ({"format": "common"}, 'logger.format must be "text" or "json", not "common"'),
            ({"fromat": "json"}, "logger: unknown setting 'fromat' (did you mean 'format'?)"),
            ({"traceHeader": "X Bad"}, 'logger.traceHeader must be an HTTP header name')):
        with pytest.raises(ConfigError) as raised:
            Config.from_json(_minimal(logger=block), path=Path("/x/config/ca.json"))
        assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
    config = Config.from_json(_minimal(logger={"format": "json", "traceHeader": "X-Trace"}),
                              path=Path("/x/config/ca.json"))
    assert (config.logger.format, config.logger.trace_header) == ("json", "X-Trace")


def _minimal(**top: Any) -> dict[str, Any]:
    return {"root": "root.crt", "crt": "int.crt", "key": "int.key",
            "address": "127.0.0.1:9000", "authority": {"provisioners": []}, **top}


# -- request ids and log lines --------------------------------------------------------------------

def lines_of_request(logs: str, field: str) -> list[str]:
    """The lines one worker wrote while it served the request whose access line carries
    ``field`` (``request_id=...``): those after the access line before it (one worker, one
    request at once)."""
    lines = logs.splitlines()
    end = next(i for i, line in enumerate(lines)
               if " INFO stepca.access: " in line and f" {field} " in line)
    start = max((i for i in range(end) if " INFO stepca.access: " in lines[i]), default=-1)
    return [line for line in lines[start + 1:end + 1] if not line.startswith("  | ")]


def revoke_body(ca: RunningCA, serial: int) -> tuple[bytes, str]:
    token = make_token(ca.pki, str(serial),
                       audience=f"https://127.0.0.1:{ca.port}/1.0/revoke")
    return json.dumps({"serial": str(serial), "ott": token}).encode(), token


def test_every_log_line_of_a_request_carries_its_id_and_what_it_acted_on(
        tmp_path: Path) -> None:
    with running_ca(tmp_path) as ca:
        body = sign_body(ca, "logged.example")
        issued = post(ca, "/1.0/sign", body, **{"X-Request-Id": "sign-0001"})
        assert issued.status_code == 201 and issued.headers["X-Request-Id"] == "sign-0001"
        serial = x509.load_pem_x509_certificate(issued.json()["crt"].encode()).serial_number
        revocation, token = revoke_body(ca, serial)
        answer = post(ca, "/1.0/revoke", revocation,
                      **{"X-Request-Id": "Root=1-5759e988-bd862e3fe1be46a9;Parent=53995c3f"})
        assert answer.status_code == 200
        assert answer.headers["X-Request-Id"] == "Root=1-5759e988-bd862e3fe1be46a9;Parent=53995c3f"
        replay = post(ca, "/1.0/revoke", revocation, **{"X-Smallstep-Id": "replay-7"})
        assert replay.status_code == 401 and replay.headers["X-Request-Id"] == "replay-7"
        logs = ca.process.logs()

    fields = (f"provisioner={ca.pki.provisioner_name} subject=logged.example serial={serial}")
    sign_lines = lines_of_request(logs, "request_id=sign-0001")
    assert len(sign_lines) == 1 and sign_lines[0].endswith(f"request_id=sign-0001 {fields}")
    revoke_lines = lines_of_request(
        logs, 'request_id="Root=1-5759e988-bd862e3fe1be46a9;Parent=53995c3f"')
    assert [line.split(" ", 3)[2:3] for line in revoke_lines] == [["INFO"]] * 2
    assert "stepca.authority: revoked certificate" in revoke_lines[0]
    for line in revoke_lines:
        # quoted: the id holds "="
        assert line.endswith('request_id="Root=1-5759e988-bd862e3fe1be46a9;Parent=53995c3f" '
                             f"serial={serial} provisioner={ca.pki.provisioner_name} "
                             "subject=logged.example"), line
    replay_lines = lines_of_request(logs, "request_id=replay-7")
    assert len(replay_lines) == 2 and "refused (401)" in replay_lines[0]
    for line in replay_lines:
        assert f"request_id=replay-7 serial={serial} provisioner=" in line, line
    # no secret: neither token (nor its signature alone), nor the password
    sign_token = json.loads(body)["ott"]
    for secret in (sign_token, sign_token.rsplit(".", 1)[1], token, token.rsplit(".", 1)[1],
                   ca.pki.password.decode()):
        assert secret not in logs


@pytest.mark.parametrize("sent", [b"x" * 129, b"bad id", b"bad\tid", b"caf\xe9", b"a,b"])
def test_a_request_id_that_is_not_sane_is_replaced(sent: bytes, ca_for_ids: RunningCA) -> None:
    with ca_for_ids.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + sent
                     + b"\r\nConnection: close\r\n\r\n")
        status, headers, _, _ = read_response(sock)
    assert status == 200
    generated = headers["x-request-id"]
    assert GENERATED_ID.fullmatch(generated)
    wait_for(lambda: f"request_id={generated}" in ca_for_ids.process.logs(), "the access line")
    assert sent.decode("latin-1") not in ca_for_ids.process.logs()


@pytest.fixture(scope="module")
def ca_for_ids(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCA]:
    with running_ca(tmp_path_factory.mktemp("ids")) as ca:
        yield ca


def test_json_lines_one_object_per_line_with_the_request_fields(tmp_path: Path) -> None:
    with running_ca(tmp_path, ca_json={"logger": {"format": "json"}}) as ca:
        body = sign_body(ca, "json.example")
        assert post(ca, "/1.0/sign", body, **{"X-Request-Id": "json-1"}).status_code == 201
        replayed = post(ca, "/1.0/sign", body, **{"X-Request-Id": "json-2"})
        assert replayed.status_code == 401
        # a client's line breaks stay inside the JSON strings of the refusal's lines
        forged = json.dumps({"serial": '1\n{"forged": 1}\u2028\r', "ott": "x"}).encode()
        assert post(ca, "/1.0/revoke", forged, **{"X-Request-Id": "json-3"}).status_code == 400
    records = [json.loads(line) for line in ca.process.logs().splitlines()]  # every line
    assert all({"time", "level", "logger"} <= record.keys() for record in records)
    assert any(r["logger"] == "gunicorn.error" for r in records)  # gunicorn's lines too
    issued = [r for r in records if r.get("request_id") == "json-1"]
    assert [(r["logger"], r["status"], r["provisioner"], r["subject"]) for r in issued] == [
        ("stepca.access", 201, ca.pki.provisioner_name, "json.example")]
    refused = [r for r in records if r.get("request_id") == "json-2"]
    assert [r["logger"] for r in refused] == ["stepca.app", "stepca.access"]
    assert all(r["provisioner"] == ca.pki.provisioner_name for r in refused)
    assert "token already used" in refused[0]["message"]
    (refusal, _access) = [r for r in records if r.get("request_id") == "json-3"]
    assert "'1\n{\"forged\": 1}\u2028\r' is not a valid serial number" in refusal["message"]
    assert not any("forged" in r for r in records)
    token = json.loads(body)["ott"]
    assert token.rsplit(".", 1)[1] not in ca.process.logs()


# -- /health --------------------------------------------------------------------------------------

def test_health_answers_500_when_the_signing_key_does_not_sign_for_the_intermediate(
        stepca_ca: Any) -> None:
    stepca_ca.authority.signer = ec.generate_private_key(ec.SECP256R1())  # not the crt's key
    answer = stepca_ca.client.simulate_get("/health")
    assert answer.status_code == 500
    assert answer.json == {"status": 500, "message": (
        "The certificate authority encountered an Internal Server Error: the signing key's "
        "test signature does not verify.")}


def test_health_answers_500_when_the_store_fails_a_read(stepca_ca: Any) -> None:
    assert stepca_ca.client.simulate_get("/health").status_code == 200
    database = json.loads(stepca_ca.config_path.read_text())["db"]["dataSource"]
    with sqlite3.connect(database) as damage:
        damage.execute("DROP TABLE x509_certs")
    answer = stepca_ca.client.simulate_get("/health")
    assert answer.status_code == 500
    assert answer.json == {"status": 500, "message": (
        "The certificate authority encountered an Internal Server Error: the store failed a "
        "read; see the CA's log.")}


def test_the_signing_keys_test_is_remembered_for_a_few_seconds(stepca_ca: Any) -> None:
    authority = stepca_ca.authority
    now = [1000.0]
    check = HealthCheck(certificates=authority.certificates, revocations=authority.revocations,
                        signer=ec.generate_private_key(ec.SECP256R1()),
                        public_key=authority.intermediates[0].public_key(),
                        clock=lambda: now[0])
    with pytest.raises(HealthCheckFailed):
        check.run()
    check.signer = authority.signer  # repaired, but not tested again yet
    now[0] += SIGNER_CHECK_SECONDS - 1
    with pytest.raises(HealthCheckFailed):
        check.run()
    now[0] += 1
    check.run()


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    from stepca.testing.postgres import postgres_cluster

    with postgres_cluster() as cluster:
        yield cluster


def test_health_answers_503_while_the_database_is_down_and_200_once_it_is_back(
        pg: Any, tmp_path: Path) -> None:
    from stepca_store_postgresql.store import POOL_WAIT, RECONNECT_FOR

    metrics_port = free_port()
    ca_json = {"db": {"type": "postgresql", "dataSource": pg.dsn, "database": pg.database},
               "metrics": {"address": f"127.0.0.1:{metrics_port}"}}
    with running_ca(tmp_path, ca_json=ca_json) as ca:

        def health() -> tuple[int, dict[str, str], bytes]:
            with ca.connect(timeout=POOL_WAIT + 20) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status, headers, body, _ = read_response(sock)
                return status, headers, body

        assert health()[0::2] == (200, b'{"status":"ok"}\n')
        pg.stop()
        try:
            status, headers, body = health()
            assert (status, headers["retry-after"]) == (503, "5")
            assert json.loads(body) == {"status": 503, "message": (
                "The certificate authority is temporarily unavailable: its database cannot "
                "be reached; try again shortly.")}
            assert pg.password not in ca.process.logs()
        finally:
            pg.start()
        assert value(scrape(metrics_port), "stepca_store_unavailable_total") == 1
        deadline = time.monotonic() + RECONNECT_FOR + 60
        while health()[0] != 200:
            assert time.monotonic() < deadline, "the store did not come back"
            time.sleep(0.5)


def test_a_reused_metrics_address_stops_the_start(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError) as raised:
            with running_ca(tmp_path, ca_json={"metrics": {"address": f"127.0.0.1:{port}"}}):
                pass
    assert (f"cannot listen on 127.0.0.1:{port} (metrics.address): Address already in use"
            in str(raised.value))
