"""Installed, not imported from the checkout: a fresh virtual environment gets the core and the
two plugins the JWK flow needs from local paths, in one pip call (their dependencies from the
package index), and runs the design document's walkthrough with its own `step` and `step-ca`.
Then a third-party distribution, tests/example_plugin, is pip-installed into the same
environment and a certificate is issued through its HMAC provisioner, with no change to the
core."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import OctKey

from stepca import __version__
from stepca.testing.process import StepCAProcess, Venv, free_port, run_step

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "tests" / "example_plugin"
ABSENT_SDKS = ("boto3", "google.auth", "azure.identity")


@dataclass
class Deployment:
    """A CA made by the venv's `step ca init`, served by its `step-ca`, and a client STEPPATH
    bootstrapped against it."""

    venv: Venv
    tmp: Path
    port: int
    password: Path
    ca_env: dict[str, str]
    client_env: dict[str, str]
    ca_json: Path
    root: Path
    fingerprint: str
    ca: StepCAProcess

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def step(self, *args: str, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step(*args, env=env or self.client_env, check=check, bin_dir=self.venv.bin,
                        cwd=self.tmp)

    def openssl_verify(self, chain: Path) -> None:
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(self.root), "-untrusted",
                                 str(chain), str(chain)], capture_output=True, text=True)
        assert verify.returncode == 0 and f"{chain}: OK" in verify.stdout, verify.stderr

    def openssl_text(self, cert: Path) -> str:
        return subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"],
                              capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    env = Venv.create(tmp_path_factory.mktemp("installed") / "venv")
    # one pip call from local paths, so `stepca` is never looked up on an index
    env.pip_install(REPO, REPO / "plugins" / "jwk", REPO / "plugins" / "store_sqlite")
    return env


@pytest.fixture(scope="module")
def deployment(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("deployment")
    port = free_port()
    password = tmp / "password.txt"
    password.write_text("installed-p4ss\n")
    ca_env = venv.env(STEPPATH=str(tmp / "ca"))
    client_env = venv.env(STEPPATH=str(tmp / "client"))
    init = run_step("ca", "init", "--name", "Installed", "--provisioner", "admin",
                    "--dns", "localhost", "--dns", "127.0.0.1",
                    "--address", f"127.0.0.1:{port}", "--password-file", str(password),
                    "--provisioner-password-file", str(password),
                    env=ca_env, bin_dir=venv.bin, cwd=tmp)
    found = re.search(r"Root fingerprint: ([0-9a-f]{64})", init.stderr)
    assert found, init.stderr
    steppath = tmp / "ca"
    ca_json, root = steppath / "config" / "ca.json", steppath / "certs" / "root_ca.crt"
    ca = StepCAProcess(ca_json, password_file=password, root=root, port=port, env=ca_env,
                       bin_dir=venv.bin).start()
    dep = Deployment(venv, tmp, port, password, ca_env, client_env, ca_json, root,
                     found.group(1), ca)
    try:
        dep.step("ca", "bootstrap", "--ca-url", dep.url, "--fingerprint", dep.fingerprint)
        yield dep
    finally:
        ca.stop()


# -- (a) the core and the two JWK-flow plugins, nothing else ---------------------------------------

def test_only_the_core_and_two_plugins_are_installed(venv: Venv) -> None:
    report = venv.python_json(
        "import importlib.metadata, importlib.util, json\n"
        "def importable(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        f"names = {list(ABSENT_SDKS) + ['stepca', 'stepca_cli', 'stepca_jwk']!r}\n"
        "import stepca\n"
        "print(json.dumps({'importable': {n: importable(n) for n in names},\n"
        "                  'dists': sorted(d.metadata['Name'] for d in\n"
        "                                  importlib.metadata.distributions()),\n"
        "                  'stepca_file': stepca.__file__, 'version': stepca.__version__}))\n")
    assert report["importable"] == {"boto3": False, "google.auth": False,
                                    "azure.identity": False, "stepca": True,
                                    "stepca_cli": True, "stepca_jwk": True}
    assert [d for d in report["dists"] if d.startswith("stepca")] == [
        "stepca", "stepca-jwk", "stepca-store-sqlite"]
    # a real installation, not the checkout: the code lives in the venv's site-packages
    assert Path(report["stepca_file"]).is_relative_to(venv.root)
    assert report["version"] == __version__


def test_jwk_walkthrough(deployment: Deployment) -> None:
    dep = deployment
    token = dep.step("ca", "token", "foo.internal", "--provisioner", "admin",
                     "--password-file", str(dep.password))
    jwt_text = token.stdout.strip()
    assert jwt_text.count(".") == 2 and "✔ Provisioner: admin (JWK)" in token.stderr
    out = dep.step("ca", "certificate", "foo.internal", "foo.crt", "foo.key",
                   "--token", jwt_text)
    assert "✔ Certificate: foo.crt" in out.stderr
    dep.openssl_verify(dep.tmp / "foo.crt")
    text = dep.openssl_text(dep.tmp / "foo.crt")
    assert "Subject: CN = foo.internal" in text and "DNS:foo.internal" in text
    replay = dep.step("ca", "certificate", "foo.internal", "again.crt", "again.key",
                      "--token", jwt_text, check=False)
    assert replay.returncode != 0 and "token already used" in replay.stderr


# -- (b) a third-party provisioner, pip-installed into the same environment ------------------------

HMAC_SECRET = secrets.token_bytes(32)
HMAC_ENTRY = {"type": "HMAC", "name": "ci",
              "secret": base64.urlsafe_b64encode(HMAC_SECRET).rstrip(b"=").decode()}


def hs256_token(dep: Deployment, subject: str, sans: list[str], *,
                secret: bytes = HMAC_SECRET) -> str:
    """Made here with joserfc, independently of the plugin, as a workload would make it."""
    now = int(time.time())
    claims = {"iss": "ci", "sub": subject, "sans": sans, "aud": f"{dep.url}/1.0/sign",
              "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(16)}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))


def csr_for(subject: str, sans: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def hmac_deployment(deployment: Deployment) -> Deployment:
    dep = deployment
    config = json.loads(dep.ca_json.read_text())
    config["authority"]["provisioners"].append(HMAC_ENTRY)
    dep.ca_json.write_text(json.dumps(config, indent="\t"))
    dep.ca.stop()

    # before the plugin is installed, the CA refuses the entry and says why
    refused = subprocess.run([str(dep.venv.bin / "step-ca"), str(dep.ca_json), "--password-file",
                              str(dep.password)], env=dep.ca_env, capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert refused.returncode != 0
    assert "has type 'HMAC', which no installed plugin provides" in refused.stderr

    installed = dep.venv.pip_install(EXAMPLE)
    done = [line for line in installed.splitlines() if line.startswith("Successfully installed")]
    # the core was not rebuilt or replaced: only the plugin came in
    assert done and done[0].split()[2:] == ["stepca-example-hmac-0.1.0"], installed
    dep.ca.start()
    return dep


def test_step_plugins_lists_the_third_party_plugin(hmac_deployment: Deployment) -> None:
    listed = hmac_deployment.step("plugins")
    lines = listed.stdout.splitlines()
    assert "example_hmac  stepca-example-hmac 0.1.0" in lines
    start = lines.index("example_hmac  stepca-example-hmac 0.1.0") + 1
    assert lines[start:start + 3] == ["    provisioner HMAC", "    provisioner client HMAC",
                                      "    hook stepca_cli_commands"]
    assert f"jwk  stepca-jwk {__version__}" in lines
    assert "failed to load" not in listed.stderr


def test_provisioners_endpoint_lists_hmac_without_its_secret(
        hmac_deployment: Deployment) -> None:
    response = requests.get(f"{hmac_deployment.ca.url}/1.0/provisioners",
                            verify=str(hmac_deployment.root), timeout=30)
    assert response.status_code == 200
    entries = {p["name"]: p for p in response.json()["provisioners"]}
    assert entries["ci"] == {"type": "HMAC", "name": "ci"} and entries["admin"]["type"] == "JWK"
    assert HMAC_ENTRY["secret"] not in response.text


def test_certificate_through_the_hmac_provisioner(hmac_deployment: Deployment) -> None:
    dep = hmac_deployment
    token = hs256_token(dep, "hmac.internal", ["hmac.internal"])
    sign = f"{dep.ca.url}/1.0/sign"
    response = requests.post(sign, json={"csr": csr_for("hmac.internal", ["hmac.internal"]),
                                         "ott": token}, verify=str(dep.root), timeout=30)
    assert response.status_code == 201, response.text
    chain = dep.tmp / "hmac.crt"
    chain.write_text("".join(response.json()["certChain"]))
    dep.openssl_verify(chain)
    text = dep.openssl_text(chain)
    assert "Subject: CN = hmac.internal" in text and "DNS:hmac.internal" in text
    assert "1.3.6.1.4.1.37476.9000.64.1" in text  # step's provisioner extension

    replay = requests.post(sign, json={"csr": csr_for("hmac.internal", ["hmac.internal"]),
                                       "ott": token}, verify=str(dep.root), timeout=30)
    assert replay.status_code == 401 and replay.json()["message"].endswith("token already used.")
    forged = requests.post(sign, json={
        "csr": csr_for("hmac.internal", ["hmac.internal"]),
        "ott": hs256_token(dep, "hmac.internal", ["hmac.internal"],
                           secret=secrets.token_bytes(32))}, verify=str(dep.root), timeout=30)
    assert forged.status_code == 401 and "signature" in forged.json()["message"]


def test_certificate_with_the_plugins_own_cli_command(hmac_deployment: Deployment) -> None:
    dep = hmac_deployment
    secret_file = dep.tmp / "ci.secret"
    secret_file.write_text(HMAC_ENTRY["secret"] + "\n")
    secret_file.chmod(0o600)
    token = dep.step("hmac", "token", "svc.internal", "--provisioner", "ci", "--secret-file",
                     str(secret_file), "--ca-url", dep.url).stdout.strip()
    out = dep.step("ca", "certificate", "svc.internal", "svc.crt", "svc.key", "--token", token)
    assert "✔ Certificate: svc.crt" in out.stderr
    dep.openssl_verify(dep.tmp / "svc.crt")
    assert "Subject: CN = svc.internal" in dep.openssl_text(dep.tmp / "svc.crt")
