"""The real ``step-ca`` starting: on an address in use it stops at once with one line and
nothing issued; otherwise it issues one server certificate per start, shared by its workers;
the certificates it issues point at an OCSP responder that answers at that very URL."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepca.testing import make_pki
from stepca.testing.http import running_ca, sign_body
from stepca.testing.process import free_port, scripts_dir

pytestmark = pytest.mark.e2e


def start_step_ca(tmp_path: Path, **ca_json) -> subprocess.CompletedProcess[str]:
    """Run ``step-ca`` to its end (it must not start) and return what it did."""
    pki = make_pki(tmp_path / "pki")
    config = pki.config(tmp_path / "run", **ca_json)
    password = tmp_path / "password"
    password.write_bytes(pki.password)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return subprocess.run([str(scripts_dir() / "step-ca"), str(config), "--password-file",
                           str(password)], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


@pytest.mark.parametrize("setting", ["address", "insecureAddress"])
def test_an_address_in_use_stops_the_start_at_once_with_one_line(tmp_path, setting):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        ca_json = {"address": busy} if setting == "address" else {
            "address": f"127.0.0.1:{free_port()}", "insecureAddress": busy,
            "ocsp": {"enabled": True}}
        result = start_step_ca(tmp_path, **ca_json)
    assert result.returncode == 1
    # one line naming the address, before anything was issued or announced
    assert result.stderr == f"Error: cannot listen on {busy} ({setting}): Address already in use\n"
    assert result.stdout == ""


def served_serial(port: int, root: Path) -> int:
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_one_server_certificate_per_start_shared_by_the_workers(tmp_path):
    with running_ca(tmp_path, workers=2, keepAlive=1) as ca:
        deadline = time.monotonic() + 30
        while len(ca.process.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the second worker may still be booting
        assert len(ca.process.pids()) == 3
        # each connection goes to whichever worker accepts it first
        served = {served_serial(ca.port, ca.root) for _ in range(12)}
        logs = ca.process.logs()
    issued = re.findall(r"server certificate serial=(\d+) ", logs)
    assert len(issued) == 1, logs
    assert served == {int(issued[0])}


def issue(ca, subject: str = "svc.example.com") -> x509.Certificate:
    response = requests.post(f"https://127.0.0.1:{ca.port}/1.0/sign",
                             data=sign_body(ca, subject), verify=str(ca.root), timeout=30)
    assert response.status_code == 201, response.text
    return x509.load_pem_x509_certificate(response.json()["crt"].encode())


def ocsp_url(cert: x509.Certificate) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [d.access_location.value for d in aia
              if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP]
    return url


def openssl_ocsp(ca, cert: x509.Certificate, url: str, tmp_path: Path) -> str:
    (tmp_path / "leaf.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(ca.pki.steppath / "certs" / "intermediate_ca.crt"),
         "-cert", str(tmp_path / "leaf.crt"), "-CAfile", str(ca.root), "-url", url,
         "-timeout", "20"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr, result.stderr
    return result.stdout


def test_openssl_ocsp_answers_at_the_certificates_own_url(tmp_path):
    with running_ca(tmp_path, ca_json={"ocsp": {"enabled": True}}) as ca:
        leaf = issue(ca)
        url = ocsp_url(leaf)
        assert url == f"https://localhost:{ca.port}/ocsp"  # dnsNames[0] and the CA's port
        assert f"{tmp_path / 'leaf.crt'}: good" in openssl_ocsp(ca, leaf, url, tmp_path)


def test_with_an_insecure_address_the_url_is_the_plain_http_listener(tmp_path):
    insecure = free_port()
    with running_ca(tmp_path, ca_json={"insecureAddress": f"127.0.0.1:{insecure}",
                                       "ocsp": {"enabled": True}}) as ca:
        leaf = issue(ca)
        url = ocsp_url(leaf)
        assert url == f"http://localhost:{insecure}/ocsp"
        assert f"{tmp_path / 'leaf.crt'}: good" in openssl_ocsp(ca, leaf, url, tmp_path)


def test_a_stop_leaves_no_traceback_in_the_log(tmp_path):
    """A worker inherits the master's child processes (retention, plain HTTP); at its exit,
    multiprocessing must not try to join them (it printed a traceback on every stop)."""
    with running_ca(tmp_path, ca_json={"insecureAddress": f"127.0.0.1:{free_port()}",
                                       "crl": {"enabled": True}}) as ca:
        process = ca.process
    log = process.logs()
    assert "Worker exiting" in log
    assert "Traceback" not in log and "Exception ignored" not in log, log
