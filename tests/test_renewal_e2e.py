"""Renewal and rekey against the real step-ca with the real `step ca renew` and openssl: the
certificates of a provisioner removed from ca.json stop renewing, and /rekey applies the key
policy of /sign."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from stepca.jose import encrypt_pbes2, jwk_from_key
from stepca.testing import row_counts
from stepca.testing.process import StepCAProcess, free_port, run_step

pytestmark = pytest.mark.e2e

UNAUTHORIZED = "The request lacked necessary authorization to be completed: "
FORBIDDEN = "The request was forbidden by the certificate authority: "
PASSWORD = "p4ss"


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.password = tmp / "password.txt"
        self.password.write_text(f"{PASSWORD}\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        self.env = {**base, "STEPPATH": str(tmp / "ca")}
        self.root = tmp / "ca" / "certs" / "root_ca.crt"
        self.ca_json = tmp / "ca" / "config" / "ca.json"
        self.ca: StepCAProcess | None = None

    def step(self, *args: str, check: bool = True):
        return run_step(*args, env=self.env, check=check, cwd=self.tmp)

    def config(self) -> dict:
        return json.loads(self.ca_json.read_text())

    def write_config(self, config: dict) -> None:
        self.ca_json.write_text(json.dumps(config, indent="\t"))

    def start(self) -> None:
        self.ca = StepCAProcess(self.ca_json, password_file=self.password, root=self.root,
                                port=self.port, env=self.env).start()

    def certificate(self, name: str, provisioner: str) -> None:
        self.step("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--provisioner",
                  provisioner, "--provisioner-password-file", str(self.password))

    def rows(self) -> tuple[int, int, int]:
        return row_counts(self.config()["db"]["dataSource"])

    def rekey(self, name: str, csr: str) -> requests.Response:
        return requests.post(f"{self.ca.url}/1.0/rekey", json={"csr": csr},
                             cert=(str(self.tmp / f"{name}.crt"), str(self.tmp / f"{name}.key")),
                             verify=str(self.root), timeout=10)

    def openssl(self, *args: str) -> str:
        import subprocess

        done = subprocess.run(["openssl", *args], cwd=self.tmp, capture_output=True, text=True,
                              timeout=60, check=True)
        return done.stdout


def temp_provisioner() -> dict:
    """A second JWK provisioner whose key is escrowed like `step ca init`'s."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = jwk_from_key(key, private=True)
    return {"type": "JWK", "name": "temp", "key": jwk_from_key(key),
            "encryptedKey": encrypt_pbes2(json.dumps(private).encode(), PASSWORD.encode())}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("renewal"))
    lab.step("ca", "init", "--name", "Renewal", "--provisioner", "admin", "--dns", "localhost",
             "--dns", "127.0.0.1", "--address", f"127.0.0.1:{lab.port}", "--password-file",
             str(lab.password))
    config = lab.config()
    config["authority"]["provisioners"].append(temp_provisioner())
    lab.write_config(config)
    lab.start()
    yield lab
    lab.ca.stop()


def test_a_removed_provisioners_certificates_stop_renewing(lab):
    lab.certificate("orphan", "temp")
    lab.certificate("kept", "admin")
    lab.step("ca", "renew", "--force", "orphan.crt", "orphan.key")  # renews while it exists

    lab.ca.stop()
    config = lab.config()
    config["authority"]["provisioners"] = [p for p in config["authority"]["provisioners"]
                                           if p["name"] != "temp"]
    lab.write_config(config)
    lab.start()

    written = lab.rows()
    why = "provisioner not found: 'temp' is no longer configured"
    for mode in ("--mtls=true", "--mtls=false"):  # mutual TLS, then an x5cInsecure token
        refused = lab.step("ca", "renew", "--force", mode, "orphan.crt", "orphan.key",
                           check=False)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.strip() == f"error renewing certificate: {UNAUTHORIZED}{why}.", mode
    lab.openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "fresh.key")
    csr = lab.openssl("req", "-new", "-key", "fresh.key", "-subj", "/CN=orphan")
    rekeyed = lab.rekey("orphan", csr)
    assert rekeyed.status_code == 401
    assert rekeyed.json() == {"status": 401, "message": f"{UNAUTHORIZED}{why}."}
    assert lab.rows() == written, "a refused renewal wrote to the database"

    # the provisioner that stayed still renews its certificates
    lab.step("ca", "renew", "--force", "kept.crt", "kept.key")
    assert lab.rows()[0] == written[0] + 1


def test_rekey_refuses_a_p192_key(lab):
    lab.certificate("weak", "admin")
    lab.openssl("ecparam", "-name", "prime192v1", "-genkey", "-noout", "-out", "p192.key")
    csr = lab.openssl("req", "-new", "-key", "p192.key", "-subj", "/CN=weak")
    written = lab.rows()
    refused = lab.rekey("weak", csr)
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        f"{FORBIDDEN}certificate request key is on the elliptic curve secp192r1; the CA "
        "certifies EC P-256, P-384 or P-521, Ed25519, or RSA of 2048 to 8192 bits.")
    assert lab.rows() == written
