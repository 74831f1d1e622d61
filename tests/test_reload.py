"""`step-ca` reads ca.json again on SIGHUP: new workers serve the new configuration while the
old ones finish the requests they hold; spent token ids stay spent; a configuration that does
not load is refused with one log line and the running one keeps serving; the certificates of
a removed provisioner stop renewing."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from stepca.testing import make_csr, make_pki, make_token
from stepca.testing.http import RunningCA, read_response, running_ca
from stepca.testing.process import wait_for

pytestmark = pytest.mark.e2e


def request(ca: RunningCA, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    with ca.connect(timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close"
                     "\r\n\r\n".encode() + body)
        status, _, answer, _ = read_response(sock)
        return status, answer


def sign(ca: RunningCA, token: str, subject: str = "foo.example.com") -> tuple[int, dict]:
    status, body = request(ca, "POST", "/1.0/sign", json.dumps(
        {"csr": make_csr(subject)[0], "ott": token}).encode())
    return status, json.loads(body)


def reload(ca: RunningCA, config: dict | None, *, expect: str, settle: bool = True) -> None:
    ca.reload(config, expect=expect, settle=settle)


def lifetime(answer: dict) -> timedelta:
    """The certificate's validity, less the backdate (1m by default)."""
    cert = x509.load_pem_x509_certificate(answer["crt"].encode())
    return cert.not_valid_after_utc - cert.not_valid_before_utc - timedelta(minutes=1)


def test_sighup_reloads_provisioners_claims_and_crl_keeping_spent_tokens(tmp_path: Path) -> None:
    with running_ca(tmp_path, requestTimeout=60) as ca:
        pki = ca.pki
        audience = f"https://127.0.0.1:{ca.port}/1.0/sign"
        spent = make_token(pki, audience=audience)
        status, answer = sign(ca, spent)
        assert status == 201 and lifetime(answer) == timedelta(hours=24)
        assert request(ca, "GET", "/1.0/crl")[0] == 404  # the CRL is off

        other = make_pki(tmp_path / "other", provisioner="second")
        config = json.loads(ca.process.ca_json.read_text())
        config["authority"]["provisioners"][0]["claims"] = {"defaultTLSCertDuration": "2h"}
        config["authority"]["provisioners"].append(other.ca_json["authority"]["provisioners"][0])
        config["crl"] = {"enabled": True}
        # a request in flight across the reload: its headers sent before, its body after
        slow = ca.connect(timeout=30)
        body = json.dumps({"csr": make_csr()[0],
                           "ott": make_token(pki, audience=audience)}).encode()
        slow.sendall(f"POST /1.0/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                     f"{len(body)}\r\nContent-Type: application/json\r\n\r\n".encode()
                     + body[:10])
        time.sleep(0.2)  # the worker has read the headers (the test needs no more than that)
        old_worker = ca.worker_pid()
        reload(ca, config, expect="reloaded: 2 provisioner(s)", settle=False)
        slow.sendall(body[10:])
        status, _, old_answer, _ = read_response(slow)
        slow.close()
        assert status == 201, old_answer  # served by the old worker, which finished it
        wait_for(lambda: len(ca.process.pids()) == 2, "the old worker gone", timeout=60)
        assert ca.worker_pid() != old_worker

        status, answer = sign(ca, make_token(pki, audience=audience))
        assert status == 201 and lifetime(answer) == timedelta(hours=2)  # the new claims
        status, answer = sign(ca, make_token(other, audience=audience, sha=pki.fingerprint))
        assert status == 201, answer  # the new provisioner
        status, answer = sign(ca, spent)  # spent before the reload: still spent
        assert (status, answer["message"]) == (401, "The request lacked necessary "
                                               "authorization to be completed: token already "
                                               "used.")
        status, crl = request(ca, "GET", "/1.0/crl")
        assert status == 200
        assert len(x509.load_der_x509_crl(crl)) == 0
        names = [p["name"] for p in json.loads(request(ca, "GET", "/provisioners")[1])[
            "provisioners"]]
        assert names == [pki.provisioner_name, "second"]


@pytest.mark.parametrize(("change", "logged"), [
    (lambda config: config["crl"].update({"enable": True}),
     "crl: unknown setting 'enable' (did you mean 'enabled'?)"),
    (lambda config: config["authority"]["provisioners"].append({"type": "JWK", "name": "x"}),
     "ca.json: provisioner 'x':"),
    (None, "is not valid JSON"),
])
def test_a_bad_configuration_is_refused_and_the_old_keeps_serving(tmp_path: Path, change,
                                                                  logged: str) -> None:
    with running_ca(tmp_path, ca_json={"crl": {"enabled": True}}) as ca:
        config = json.loads(ca.process.ca_json.read_text())
        if change is None:
            ca.process.ca_json.write_text("{ not json")
            before = ca.process.logs().count("not reloaded")
            os.kill(ca.process.proc.pid, signal.SIGHUP)
            wait_for(lambda: ca.process.logs().count("not reloaded") > before,
                     "the refusal in the log", timeout=60)
        else:
            change(config)
            reload(ca, config, expect="not reloaded")
        line = next(line for line in ca.process.logs().splitlines() if "not reloaded" in line)
        assert "ERROR" in line and logged in line, line
        assert "the running configuration keeps serving" in line
        wait_for(lambda: len(ca.process.pids()) == 2, "one worker", timeout=60)
        audience = f"https://127.0.0.1:{ca.port}/1.0/sign"
        assert sign(ca, make_token(ca.pki, audience=audience))[0] == 201
        assert request(ca, "GET", "/1.0/crl")[0] == 200


def test_the_certificates_of_a_removed_provisioner_stop_renewing(tmp_path: Path) -> None:
    from stepca.testing.process import run_step

    with running_ca(tmp_path) as ca:
        pki = ca.pki
        other = make_pki(tmp_path / "other", provisioner="second")
        config = json.loads(ca.process.ca_json.read_text())
        config["authority"]["provisioners"].append(other.ca_json["authority"]["provisioners"][0])
        reload(ca, config, expect="reloaded: 2 provisioner(s)")
        token = make_token(other, "gone.example", audience=f"https://127.0.0.1:{ca.port}/1.0/sign",
                           sha=pki.fingerprint)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("STEP")},
               "STEPPATH": str(tmp_path / "step"), "STEP_CA_URL": f"https://127.0.0.1:{ca.port}",
               "STEP_ROOT": str(ca.root)}
        run_step("ca", "certificate", "gone.example", "gone.crt", "gone.key", "--token", token,
                 env=env, cwd=tmp_path)
        run_step("ca", "renew", "--force", "gone.crt", "gone.key", env=env, cwd=tmp_path)

        config["authority"]["provisioners"].pop()
        reload(ca, config, expect="reloaded: 1 provisioner(s)")
        refused = run_step("ca", "renew", "--force", "gone.crt", "gone.key", env=env,
                           cwd=tmp_path, check=False)
        assert refused.returncode == 1
        assert "provisioner not found" in refused.stderr, refused.stderr


def test_the_plain_http_listener_serves_the_reloaded_settings(tmp_path: Path) -> None:
    import http.client

    from stepca.testing.process import free_port

    port = free_port()
    with running_ca(tmp_path, ca_json={"insecureAddress": f"127.0.0.1:{port}",
                                       "crl": {"enabled": True}}) as ca:
        def ocsp_status() -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", "/ocsp", body=b"\x30\x00",
                                   headers={"Content-Type": "application/ocsp-request"})
                return connection.getresponse().status
            finally:
                connection.close()

        assert ocsp_status() == 404  # OCSP is off
        config = json.loads(ca.process.ca_json.read_text())
        config["ocsp"] = {"enabled": True}
        reload(ca, config, expect="reloaded: 1 provisioner(s)")
        wait_for(lambda: ocsp_status() == 200, "OCSP on the plain-HTTP listener", timeout=30)


def test_provisioners_added_updated_and_removed_with_step_take_effect_on_sighup(
        tmp_path: Path) -> None:
    """`step ca provisioner add --create`, `update` and `remove` edit the running CA's ca.json;
    after SIGHUP the new provisioner's token issues, its new claims apply, and once it is
    removed its certificates no longer renew."""
    from stepca.testing.process import run_step

    with running_ca(tmp_path) as ca:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("STEP")},
               "STEPPATH": str(tmp_path / "step"), "STEP_CA_URL": f"https://127.0.0.1:{ca.port}",
               "STEP_ROOT": str(ca.root)}
        (tmp_path / "ci-password").write_text("ci password")
        ca_config = ("--ca-config", str(ca.process.ca_json))
        run_step("ca", "provisioner", "add", "ci", "--create", "--password-file", "ci-password",
                 *ca_config, env=env, cwd=tmp_path)
        reload(ca, None, expect="reloaded: 2 provisioner(s)")

        def certificate(name: str) -> timedelta:
            # the escrowed key comes from the CA, opened with the password given to add
            run_step("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--provisioner",
                     "ci", "--provisioner-password-file", "ci-password", env=env, cwd=tmp_path)
            cert = x509.load_pem_x509_certificate((tmp_path / f"{name}.crt").read_bytes())
            return cert.not_valid_after_utc - cert.not_valid_before_utc - timedelta(minutes=1)

        assert certificate("one.example") == timedelta(hours=24)
        run_step("ca", "renew", "--force", "one.example.crt", "one.example.key", env=env,
                 cwd=tmp_path)

        run_step("ca", "provisioner", "update", "ci", "--x509-default-dur", "2h", *ca_config,
                 env=env, cwd=tmp_path)
        reload(ca, None, expect="reloaded: 2 provisioner(s)")
        assert certificate("two.example") == timedelta(hours=2)

        run_step("ca", "provisioner", "remove", "ci", *ca_config, env=env, cwd=tmp_path)
        reload(ca, None, expect="reloaded: 1 provisioner(s)")
        refused = run_step("ca", "renew", "--force", "one.example.crt", "one.example.key",
                           env=env, cwd=tmp_path, check=False)
        assert refused.returncode == 1
        assert "provisioner not found" in refused.stderr, refused.stderr


def test_tls_options_take_effect_on_sighup(tmp_path: Path) -> None:
    with running_ca(tmp_path) as ca:
        def version() -> str | None:
            with ca.connect() as sock:
                return sock.version()

        assert version() == "TLSv1.3"
        config = json.loads(ca.process.ca_json.read_text())
        config["tls"] = {**config.get("tls", {}), "maxVersion": 1.2}
        reload(ca, config, expect="reloaded: 1 provisioner(s)")
        assert version() == "TLSv1.2"
