"""Renewing and revoking a certificate as smallstep's guides walk through them
(https://smallstep.com/docs/step-ca/renewal/, https://smallstep.com/docs/step-ca/revocation/),
and active revocation,
through real processes: step-ca (gunicorn, TLS and a plain-HTTP listener), the step CLI,
openssl as the independent CRL and OCSP client."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests
from cryptography import x509

from stepca.testing.process import StepCAProcess, free_port, run_step, scripts_dir, wait_for

pytestmark = pytest.mark.e2e


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.http_port = free_port(), free_port()
        self.url = f"https://localhost:{self.port}"
        self.password = tmp / "password.txt"
        self.password.write_text("p4ss\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        self.env = {**base, "STEPPATH": str(tmp / "ca")}
        self.root = tmp / "ca" / "certs" / "root_ca.crt"
        self.intermediate = tmp / "ca" / "certs" / "intermediate_ca.crt"

    def step(self, *args: str, check: bool = True, **kwargs):
        return run_step(*args, env=self.env, check=check, cwd=self.tmp, **kwargs)

    def certificate(self, name: str, *extra: str) -> x509.Certificate:
        self.step("ca", "certificate", name, f"{name}.crt", f"{name}.key",
                  "--provisioner-password-file", str(self.password), *extra)
        return read(self.tmp / f"{name}.crt")

    def openssl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", *args], cwd=self.tmp, capture_output=True, text=True,
                              timeout=60)


def read(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lifecycle"))
    lab.step("ca", "init", "--name", "Lifecycle", "--provisioner", "admin", "--dns", "localhost",
             "--dns", "127.0.0.1", "--address", f"127.0.0.1:{lab.port}", "--password-file",
             str(lab.password))
    ca_json = lab.tmp / "ca" / "config" / "ca.json"
    config = json.loads(ca_json.read_text())
    http = f"http://127.0.0.1:{lab.http_port}"
    config["insecureAddress"] = f"127.0.0.1:{lab.http_port}"
    config["crl"] = {"enabled": True, "generateOnRevoke": True, "cacheDuration": "1h",
                     "idpURL": f"{http}/crl"}
    config["ocsp"] = {"enabled": True, "url": f"{http}/ocsp"}
    config["authority"]["backdate"] = "1s"
    config["authority"]["disableIssuedAtCheck"] = True
    config["authority"]["provisioners"][0]["claims"] = {"minTLSCertDuration": "10s"}
    ca_json.write_text(json.dumps(config, indent="\t"))
    lab.ca = StepCAProcess(ca_json, password_file=lab.password, root=lab.root, port=lab.port,
                           env=lab.env).start()
    yield lab
    lab.ca.stop()


def test_renew_keeps_lifetime_over_mtls_and_token(lab):
    old = lab.certificate("foo", "--not-after", "2h")
    out = lab.step("ca", "renew", "--force", "foo.crt", "foo.key")
    assert out.stderr.strip() == "Your certificate has been saved in foo.crt."
    mtls = read(lab.tmp / "foo.crt")
    assert mtls.serial_number != old.serial_number and mtls.subject == old.subject
    lifetime = old.not_valid_after_utc - old.not_valid_before_utc
    assert mtls.not_valid_after_utc - mtls.not_valid_before_utc == lifetime
    assert re.search(r'"POST /renew HTTP/1.1" 201', lab.ca.logs())

    lab.step("ca", "renew", "--mtls=false", "--force", "foo.crt", "foo.key")
    token = read(lab.tmp / "foo.crt")
    assert token.serial_number not in (old.serial_number, mtls.serial_number)
    assert token.not_valid_after_utc - token.not_valid_before_utc == lifetime
    assert lab.openssl("verify", "-CAfile", str(lab.root), "-untrusted", "foo.crt",
                       "foo.crt").returncode == 0

    skipped = lab.step("ca", "renew", "foo.crt", "foo.key", "--expires-in", "1h")
    # about two hours left; rounding to seconds may print either side of the hour
    assert re.match(r"certificate not renewed: expires in (1h59m\d+s|2h0m0s)\n$",
                    skipped.stderr)
    assert read(lab.tmp / "foo.crt").serial_number == token.serial_number
    needs = lab.step("certificate", "needs-renewal", "foo.crt", check=False)
    assert needs.returncode == 1
    assert lab.step("certificate", "needs-renewal", "foo.crt", "--expires-in", "3h",
                    "-v").stdout == "certificate needs renewal\n"


def test_rekey_over_mtls(lab):
    lab.certificate("rekey")
    lab.openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "new.key")
    csr = lab.openssl("req", "-new", "-key", "new.key", "-subj", "/CN=rekey").stdout
    response = requests.post(f"{lab.ca.url}/1.0/rekey", json={"csr": csr},
                             cert=(str(lab.tmp / "rekey.crt"), str(lab.tmp / "rekey.key")),
                             verify=str(lab.root), timeout=10)
    assert response.status_code == 201, response.text
    new = x509.load_pem_x509_certificate(response.json()["crt"].encode())
    new_key = lab.openssl("pkey", "-in", "new.key", "-pubout").stdout
    from cryptography.hazmat.primitives import serialization
    assert new.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo
                                         ).decode() == new_key
    no_cert = requests.post(f"{lab.ca.url}/1.0/rekey", json={"csr": csr}, verify=str(lab.root),
                            timeout=10)
    assert no_cert.status_code == 400


def test_revoke_then_renew_refused_crl_and_ocsp(lab):
    good = lab.certificate("good")
    bad = lab.certificate("bad")
    http = f"http://127.0.0.1:{lab.http_port}"
    for name in ("good", "bad"):
        status = lab.openssl("ocsp", "-issuer", str(lab.intermediate), "-cert", f"{name}.crt",
                             "-url", f"{http}/ocsp", "-CAfile", str(lab.root))
        assert f"{name}.crt: good" in status.stdout, status.stdout + status.stderr
        assert "Response verify OK" in status.stderr
        # openssl sends a nonce by default; the responder ignores it (decision 0013)
        assert "WARNING: no nonce in response" in status.stderr
    # the plain-HTTP listener caches its signed answers: the same bytes twice, for each CertID
    # hash, and openssl verifies the SHA-384 one as well
    for digest in ("-sha1", "-sha384"):
        for attempt in ("1", "2"):
            status = lab.openssl("ocsp", "-no_nonce", "-issuer", str(lab.intermediate), digest,
                                 "-cert", "good.crt", "-url", f"{http}/ocsp", "-CAfile",
                                 str(lab.root), "-respout", f"good{digest}.{attempt}.der")
            assert "good.crt: good" in status.stdout, status.stdout + status.stderr
            assert "Response verify OK" in status.stderr
        assert (lab.tmp / f"good{digest}.1.der").read_bytes() == \
            (lab.tmp / f"good{digest}.2.der").read_bytes()
    assert (lab.tmp / "good-sha1.1.der").read_bytes() != \
        (lab.tmp / "good-sha384.1.der").read_bytes()

    out = lab.step("ca", "revoke", "--cert", "bad.crt", "--key", "bad.key")
    assert f"Certificate with Serial Number {bad.serial_number} has been revoked." in out.stderr
    refused = lab.step("ca", "renew", "--force", "bad.crt", "bad.key", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error renewing certificate: ")
    assert "certificate has been revoked" in refused.stderr
    twice = lab.step("ca", "revoke", str(bad.serial_number), "--provisioner-password-file",
                     str(lab.password), check=False)
    assert twice.returncode == 1 and "is already revoked" in twice.stderr

    # revoked through a gunicorn worker; the listener, another process, had cached "good"
    status = lab.openssl("ocsp", "-issuer", str(lab.intermediate), "-cert", "bad.crt",
                         "-url", f"{http}/ocsp", "-CAfile", str(lab.root))
    assert "bad.crt: revoked" in status.stdout, status.stdout + status.stderr
    assert "Response verify OK" in status.stderr
    status = lab.openssl("ocsp", "-issuer", str(lab.intermediate), "-cert", "good.crt",
                         "-url", f"{http}/ocsp", "-CAfile", str(lab.root))
    assert "good.crt: good" in status.stdout

    crl = requests.get(f"{http}/crl", timeout=10)
    assert crl.status_code == 200 and crl.headers["Content-Type"] == "application/pkix-crl"
    (lab.tmp / "crl.der").write_bytes(crl.content)
    lab.openssl("crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem")
    both = ["-CAfile", str(lab.root), "-untrusted", str(lab.intermediate), "-crl_check",
            "-CRLfile", "crl.pem"]
    revoked = lab.openssl("verify", *both, "bad.crt")
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    fine = lab.openssl("verify", *both, "good.crt")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    cdp = lab.openssl("x509", "-in", "good.crt", "-noout", "-ext",
                      "crlDistributionPoints,authorityInfoAccess").stdout
    assert f"URI:{http}/crl" in cdp and f"OCSP - URI:{http}/ocsp" in cdp
    inspected = lab.step("crl", "inspect", f"{http}/crl", "--ca", str(lab.intermediate))
    assert f"Serial Number: {bad.serial_number}" in inspected.stdout
    assert "Signature: valid" in inspected.stdout and "Issuer: CN=Lifecycle Intermediate CA" \
        in inspected.stdout
    as_json = json.loads(lab.step("crl", "inspect", "crl.der", "--format", "json").stdout)
    assert [e["serial_number"] for e in as_json["revoked_certificates"]] == [
        str(bad.serial_number)]
    # the plain-HTTP listener serves nothing else
    assert requests.get(f"{http}/roots", timeout=10).status_code == 404
    assert lab.step("certificate", "inspect", "--short", "good.crt").returncode == 0
    del good


def test_certificate_verify_checks_crl_and_ocsp(lab):
    lab.certificate("kept")
    lab.certificate("dropped")
    http = f"http://127.0.0.1:{lab.http_port}"
    checks = ["--roots", str(lab.root), "--verify-crl", "--verify-ocsp", "--verbose"]
    for name in ("kept", "dropped"):
        fine = lab.step("certificate", "verify", f"{name}.crt", *checks)
        assert fine.stdout.splitlines() == [
            "certificate validated against roots", f"certificate not revoked in CRL {http}/crl",
            f"certificate status is good according OCSP {http}/ocsp", "certficiate is valid"]
    lab.step("ca", "revoke", "--cert", "dropped.crt", "--key", "dropped.key", "--reasonCode", "4")
    for flag, source in (("--verify-crl", f"the CRL at {http}/crl"), ("--verify-ocsp",
                                                                      f"OCSP {http}/ocsp")):
        refused = lab.step("certificate", "verify", "dropped.crt", "--roots", str(lab.root),
                           flag, check=False)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.strip() == (f"failed to verify certificate: certificate has been "
                                          f"revoked according to {source} (reason: superseded)")
    assert lab.step("certificate", "verify", "kept.crt", *checks).returncode == 0

    # with the leaf alone, the issuer is the one path validation found; --issuing-ca overrides
    leaf_only = lab.tmp / "kept-leaf.crt"
    leaf_only.write_text((lab.tmp / "kept.crt").read_text().split("-----END CERTIFICATE-----")[0]
                         + "-----END CERTIFICATE-----\n")
    both_roots = f"{lab.root},{lab.intermediate}"
    assert lab.step("certificate", "verify", str(leaf_only), "--roots", both_roots,
                    "--verify-ocsp", "--verify-crl").returncode == 0
    wrong = lab.step("certificate", "verify", "kept.crt", "--roots", str(lab.root),
                     "--verify-crl", "--issuing-ca", str(lab.root), check=False)
    assert wrong.returncode == 1
    assert "is not signed by the certificate's issuer" in wrong.stderr
    unreachable = lab.step("certificate", "verify", "kept.crt", "--roots", str(lab.root),
                           "--verify-ocsp", "--ocsp-endpoint",
                           f"http://127.0.0.1:{free_port()}/ocsp", check=False)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_revoke_by_serial_with_token(lab):
    cert = lab.certificate("tok")
    token = lab.step("ca", "token", str(cert.serial_number), "--provisioner-password-file",
                     str(lab.password)).stdout.strip()
    wrong = lab.step("ca", "revoke", str(cert.serial_number), "--token", token, check=False)
    assert wrong.returncode == 1 and "wrong audience" in wrong.stderr  # a sign token
    lab.step("ca", "revoke", str(cert.serial_number), "--reasonCode", "superseded",
             "--provisioner-password-file", str(lab.password))
    status = lab.openssl("ocsp", "-issuer", str(lab.intermediate), "-cert", "tok.crt",
                         "-url", f"http://127.0.0.1:{lab.http_port}/ocsp", "-CAfile",
                         str(lab.root))
    assert "tok.crt: revoked" in status.stdout and "Reason: superseded" in status.stdout


def test_daemon_renews_survives_outage_and_reacts_to_sighup(lab):
    lab.certificate("daemon", "--not-after", "30s")
    log = lab.tmp / "renewed.log"
    out, err = open(lab.tmp / "daemon.out", "w"), open(lab.tmp / "daemon.err", "w")
    daemon = subprocess.Popen(
        [str(scripts_dir() / "step"), "ca", "renew", "--daemon", "--retry-interval", "2s",
         "--exec", f"sh -c 'echo renewed >> {log}'", "daemon.crt", "daemon.key"],
        cwd=lab.tmp, env=lab.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def renewals() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    def stdout() -> str:
        return (lab.tmp / "daemon.out").read_text()

    try:
        wait_for(lambda: "first renewal in" in stdout(), "the first log line", timeout=20)
        assert re.match(r"INFO: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d first renewal in (\d+s|1\dm)",
                        stdout())
        first = read(lab.tmp / "daemon.crt")
        wait_for(lambda: renewals() >= 1, "the first renewal", timeout=40)
        renewed = read(lab.tmp / "daemon.crt")
        assert renewed.serial_number != first.serial_number
        assert first.not_valid_after_utc > renewed.not_valid_before_utc  # renewed before expiry
        assert "certificate renewed, next in" in stdout()

        lab.ca.stop()
        wait_for(lambda: "error renewing certificate" in (lab.tmp / "daemon.err").read_text(),
                 "a failed renewal while the CA is down", timeout=40)
        assert re.search(r"ERROR: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d error renewing certificate: "
                         r"client POST https://localhost:\d+/renew failed",
                         (lab.tmp / "daemon.err").read_text())
        lab.ca.start()
        count = renewals()
        wait_for(lambda: renewals() > count, "a renewal after the CA came back", timeout=20)

        count = renewals()
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: renewals() > count, "the renewal SIGHUP asks for", timeout=10)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(20)
        out.close()
        err.close()
    assert code == 0


def test_renew_signals_a_process_and_needs_renewal_errors(lab):
    lab.certificate("sig", "--not-after", "1h")
    marker = lab.tmp / "got-signal"
    waiter = subprocess.Popen(
        ["python3", "-c", "import signal, sys, time, pathlib\n"
         f"signal.signal(signal.SIGUSR1, lambda *a: (pathlib.Path({str(marker)!r})"
         ".write_text('usr1'), sys.exit(0)))\n"
         "print('ready', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert waiter.stdout.readline().strip() == "ready"
        lab.step("ca", "renew", "--force", "--pid", str(waiter.pid), "--signal",
                 str(int(signal.SIGUSR1)), "sig.crt", "sig.key")
        assert waiter.wait(10) == 0 and marker.read_text() == "usr1"
    finally:
        waiter.kill()
        waiter.wait()
        waiter.stdout.close()
    (lab.tmp / "garbage.crt").write_text("not a certificate")
    assert lab.step("certificate", "needs-renewal", "garbage.crt", check=False).returncode == 255
    assert lab.step("certificate", "needs-renewal", "sig.crt", "--expires-in", "150%",
                    check=False).returncode == 255


SYSTEM_STORE = Path("/usr/local/share/ca-certificates")


@pytest.mark.skipif(os.geteuid() != 0 or not SYSTEM_STORE.is_dir()
                    or shutil.which("update-ca-certificates") is None
                    or shutil.which("certutil") is None,
                    reason="changes the Debian system trust store: needs root, "
                           "update-ca-certificates and certutil")
def test_bootstrap_install_makes_the_system_and_nss_trust_the_ca(lab, tmp_path):
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    env = {**lab.env, "STEPPATH": str(tmp_path / "client"), "HOME": str(home)}
    fingerprint = lab.step("certificate", "fingerprint", str(lab.root)).stdout.strip()
    root = read(lab.root)
    url = f"https://127.0.0.1:{lab.port}/health"
    context = ssl.create_default_context()  # the system's trust store, nothing else
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, context=context, timeout=10)
    try:
        done = run_step("ca", "bootstrap", "--ca-url", lab.url, "--fingerprint", fingerprint,
                        "--install", env=env, cwd=tmp_path)
        assert f"installed in the system trust store {SYSTEM_STORE}" in done.stderr
        assert f"installed in the NSS database {nssdb}" in done.stderr
        context = ssl.create_default_context()
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            assert json.loads(answer.read()) == {"status": "ok"}
        listing = subprocess.run(["certutil", "-L", "-d", f"sql:{nssdb}"], capture_output=True,
                                 text=True, check=True).stdout
        assert f"Lifecycle Root CA {root.serial_number}" in listing
    finally:
        run_step("certificate", "uninstall", str(lab.root), env=env, cwd=tmp_path, check=False)
    assert not any(SYSTEM_STORE.glob(f"*{root.serial_number}*"))
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=10)
