"""step's commands that stepca's `step` lacked (issue 12): `step ca token --revoke/--renew/
--rekey`, `step ca rekey`, `step ca provisioner jwe-key`, `step version`, `step context` and
`step ca bootstrap --context`, driven as subprocesses against a real step-ca; what the CA answers
and openssl's view of the result are what is checked."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from stepca.jose import jwk_from_key, parse_unverified, thumbprint
from stepca.testing.http import running_ca
from stepca.testing.process import run_step, scripts_dir, wait_for

pytestmark = pytest.mark.e2e


class Lab:
    """One step-ca (with a CRL) and a `step` configured for it by flags."""

    def __init__(self, ca, tmp: Path) -> None:
        self.ca, self.tmp = ca, tmp
        self.url = f"https://127.0.0.1:{ca.port}"
        self.password = tmp / "password.txt"
        self.password.write_bytes(ca.pki.password + b"\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        self.env = {**base, "STEPPATH": str(tmp / "step"), "STEP_CA_URL": self.url,
                    "STEP_ROOT": str(ca.root)}

    def step(self, *args: str, check: bool = True, env: dict | None = None):
        return run_step(*args, env=env or self.env, check=check, cwd=self.tmp)

    def certificate(self, name: str, *extra: str) -> x509.Certificate:
        self.step("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--password-file",
                  str(self.password), *extra)
        return read(self.tmp / f"{name}.crt")

    def openssl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", *args], cwd=self.tmp, capture_output=True, text=True,
                              timeout=60)

    def verify_chain(self, name: str) -> None:
        done = self.openssl("verify", "-CAfile", str(self.ca.root), "-untrusted", name, name)
        assert done.returncode == 0, done.stdout + done.stderr

    def public_key_of_key(self, name: str) -> str:
        return self.openssl("pkey", "-in", name, "-pubout").stdout

    def public_key_of_cert(self, name: str) -> str:
        return self.openssl("x509", "-in", name, "-noout", "-pubkey").stdout

    def crl_text(self) -> str:
        der = requests.get(f"{self.url}/crl", verify=str(self.ca.root), timeout=10)
        assert der.status_code == 200
        (self.tmp / "crl.der").write_bytes(der.content)
        return self.openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text").stdout


def read(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clicmds")
    with running_ca(tmp / "server", ca_json={"crl": {"enabled": True,
                                                     "generateOnRevoke": True}}) as ca:
        yield Lab(ca, tmp)


def claims_of(token: str) -> tuple[dict, dict]:
    parsed = parse_unverified(token)
    return parsed.header, parsed.claims


# -- step ca token --revoke / --renew / --rekey ----------------------------------------------------

def test_token_revoke_really_revokes(lab):
    cert = lab.certificate("revoked-by-token")
    serial = str(cert.serial_number)
    # the seed's flag for the provisioner password
    token = lab.step("ca", "token", serial, "--revoke", "--password-file",
                     str(lab.password)).stdout.strip()
    header, claims = claims_of(token)
    assert claims["aud"] == f"{lab.url}/1.0/revoke" and claims["sub"] == serial
    assert claims["iss"] == lab.ca.pki.provisioner_name
    assert header["kid"] == lab.ca.pki.provisioner_kid
    assert claims["sha"] == lab.ca.pki.fingerprint and "sans" not in claims
    listed = f"Serial Number: {cert.serial_number:X}".replace(": ", ": 0" if len(
        f"{cert.serial_number:X}") % 2 else ": ")  # openssl prints whole bytes
    assert listed not in lab.crl_text()
    out = lab.step("ca", "revoke", serial, "--token", token)
    assert f"Certificate with Serial Number {serial} has been revoked." in out.stderr
    assert listed in lab.crl_text()
    refused = lab.step("ca", "renew", "--force", "revoked-by-token.crt",
                       "revoked-by-token.key", check=False)
    assert refused.returncode == 1 and "certificate has been revoked" in refused.stderr
    # a revoke token is no sign token
    sign = lab.step("ca", "certificate", "x", "x.crt", "x.key", "--token", token, check=False)
    assert sign.returncode == 1


def test_token_revoke_refusals(lab):
    both = lab.step("ca", "token", "1234", "--revoke", "--san", "a.example.com", check=False)
    assert both.returncode == 1
    assert both.stderr.strip() == "flag '--san' is incompatible with '--revoke'"
    lab.certificate("x5c-holder")
    # as step: x5c flags choose an X5C provisioner, and this CA has none
    x5c = lab.step("ca", "token", "1234", "--revoke", "--x5c-cert", "x5c-holder.crt",
                   "--x5c-key", "x5c-holder.key", check=False)
    assert x5c.returncode == 1
    assert x5c.stderr.strip() == ("cannot create a new token: the CA does not have any "
                                  "provisioner configured")


def test_token_renew_renews_without_mutual_tls(lab):
    old = lab.certificate("renew-me")
    token = lab.step("ca", "token", "renew-me", "--renew", "--x5c-cert", "renew-me.crt",
                     "--x5c-key", "renew-me.key").stdout.strip()
    header, claims = claims_of(token)
    key = serialization.load_pem_private_key((lab.tmp / "renew-me.key").read_bytes(), None)
    assert header["kid"] == thumbprint(jwk_from_key(key.public_key()))
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5cInsecure"]]
    assert chain[0] == old and len(chain) == 2
    assert claims["iss"] == "step-ca-client/1.0" and claims["sub"] == "renew-me"
    assert claims["aud"] == f"{lab.url}/1.0/renew"
    assert claims["exp"] - claims["nbf"] == 300 and claims["iat"] == claims["nbf"]
    assert "jti" not in claims and "sha" not in claims  # as step makes it
    answer = requests.post(f"{lab.url}/renew", headers={"Authorization": f"Bearer {token}"},
                           verify=str(lab.ca.root), timeout=10)
    assert answer.status_code == 201, answer.text
    (lab.tmp / "renewed.crt").write_text("".join(answer.json()["certChain"]))
    new = read(lab.tmp / "renewed.crt")
    assert new.serial_number != old.serial_number and new.subject == old.subject
    assert new.public_key() == old.public_key()
    lab.verify_chain("renewed.crt")
    again = requests.post(f"{lab.url}/renew", headers={"Authorization": f"Bearer {token}"},
                          verify=str(lab.ca.root), timeout=10)
    assert again.status_code == 401  # a token is spent once


def test_token_renew_refusals(lab):
    lab.certificate("renew-flags")
    missing = lab.step("ca", "token", "renew-flags", "--renew", "--x5c-cert", "renew-flags.crt",
                       check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "'step ca token' requires the '--x5c-key' flag"
    other = lab.step("ca", "token", "someone-else", "--renew", "--x5c-cert", "renew-flags.crt",
                     "--x5c-key", "renew-flags.key", check=False)
    assert other.returncode == 1
    assert other.stderr.strip() == ("positional argument <subject> must match the certificate "
                                    "common name")


def test_token_rekey_is_a_sign_token_as_in_step(lab):
    token = lab.step("ca", "token", "rekey-tok", "--rekey", "--password-file",
                     str(lab.password)).stdout.strip()
    _, claims = claims_of(token)
    assert claims["aud"] == f"{lab.url}/1.0/sign" and claims["sans"] == ["rekey-tok"]
    lab.step("ca", "certificate", "rekey-tok", "rekey-tok.crt", "rekey-tok.key", "--token",
             token)
    lab.verify_chain("rekey-tok.crt")


def test_token_without_terminal_names_the_seeds_password_flag(lab):
    asked = lab.step("ca", "token", "foo.local", check=False)
    assert asked.returncode == 1 and asked.stdout == ""
    assert "'step ca token' requires the '--password-file' flag" in asked.stderr


# -- step ca rekey ---------------------------------------------------------------------------------

def test_rekey_gives_a_new_key_and_certificate(lab):
    old = lab.certificate("rekeyed", "--san", "rekeyed", "--san", "10.0.0.9")
    old_key = lab.public_key_of_key("rekeyed.key")
    out = lab.step("ca", "rekey", "--force", "rekeyed.crt", "rekeyed.key")
    assert out.stderr == "✔ Certificate: rekeyed.crt\n✔ Private Key: rekeyed.key\n"
    new = read(lab.tmp / "rekeyed.crt")
    new_key = lab.public_key_of_key("rekeyed.key")
    assert new_key != old_key and lab.public_key_of_cert("rekeyed.crt") == new_key
    assert new.serial_number != old.serial_number and new.subject == old.subject
    san = x509.SubjectAlternativeName
    assert new.extensions.get_extension_for_class(san).value == \
        old.extensions.get_extension_for_class(san).value
    assert stat.S_IMODE((lab.tmp / "rekeyed.key").stat().st_mode) == 0o600
    lab.verify_chain("rekeyed.crt")
    # the new pair authenticates the next rekey, here to an RSA key written elsewhere
    lab.step("ca", "rekey", "rekeyed.crt", "rekeyed.key", "--kty", "RSA", "--size", "2048",
             "--out-cert", "rsa.crt", "--out-key", "rsa.key")
    assert isinstance(read(lab.tmp / "rsa.crt").public_key(), rsa.RSAPublicKey)
    assert lab.public_key_of_cert("rsa.crt") == lab.public_key_of_key("rsa.key")
    assert lab.public_key_of_key("rekeyed.key") == new_key  # untouched
    lab.verify_chain("rsa.crt")


def test_rekey_to_a_given_key_and_refusals(lab):
    lab.certificate("given")
    mine = ec.generate_private_key(ec.SECP384R1())
    (lab.tmp / "mine.key").write_bytes(mine.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    before = (lab.tmp / "given.key").read_bytes()
    out = lab.step("ca", "rekey", "given.crt", "given.key", "--private-key", "mine.key",
                   "--out-cert", "given-new.crt")
    assert out.stderr == "✔ Certificate: given-new.crt\n"  # the given key is not written
    assert (lab.tmp / "given.key").read_bytes() == before
    assert lab.public_key_of_cert("given-new.crt") == lab.public_key_of_key("mine.key")

    kept = read(lab.tmp / "given.crt")
    later = lab.step("ca", "rekey", "given.crt", "given.key", "--expires-in", "1h")
    assert re.fullmatch(r"certificate not rekeyed: expires in \d+h\d+m\d+s\n", later.stderr)
    assert read(lab.tmp / "given.crt") == kept
    asks = lab.step("ca", "rekey", "given.crt", "given.key", check=False)
    assert asks.returncode == 1 and "--force" in asks.stderr
    assert read(lab.tmp / "given.crt") == kept
    for args, message in [
        (["--rekey-period", "1h"], "flag '--rekey-period' requires the '--daemon' flag"),
        (["--curve", "P-384"], "flag '--curve' requires the '--kty' flag"),
        (["--pid", "1", "--pid-file", "x"],
         "flag '--pid' and flag '--pid-file' are mutually exclusive"),
    ]:
        refused = lab.step("ca", "rekey", "--force", "given.crt", "given.key", *args,
                           check=False)
        assert refused.returncode == 1 and refused.stderr.strip() == message


def test_rekey_daemon_rekeys_on_sighup(lab):
    lab.certificate("daemon")
    first_key = lab.public_key_of_key("daemon.key")
    log = lab.tmp / "daemon.out"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(scripts_dir() / "step"), "ca", "rekey", "--daemon",
                                 "daemon.crt", "daemon.key"], cwd=lab.tmp, env=lab.env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: "first renewal in" in log.read_text(), "the daemon to start")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "certificate rekeyed, next in" in log.read_text(), "a rekey")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    new_key = lab.public_key_of_key("daemon.key")
    assert new_key != first_key and lab.public_key_of_cert("daemon.crt") == new_key
    lab.verify_chain("daemon.crt")


# -- step ca provisioner jwe-key, step version -----------------------------------------------------

def test_provisioner_jwe_key(lab):
    kid = lab.ca.pki.provisioner_kid
    out = lab.step("ca", "provisioner", "jwe-key", kid)
    expected = lab.ca.pki.ca_json["authority"]["provisioners"][0]["encryptedKey"]
    assert out.stdout == expected + "\n"
    unknown = lab.step("ca", "provisioner", "jwe-key", "no-such-kid", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error getting the provisioning key: ")


def test_version(lab):
    out = lab.step("version")
    assert re.fullmatch(r"stepca CLI/\d+\.\d+\.\d+\S* \(linux/(amd64|arm64|\w+)\)\n"
                        r"Release Date: N/A\n", out.stdout), out.stdout
    assert lab.step("--version").stdout == out.stdout


# -- step context, step ca bootstrap --context -----------------------------------------------------

def test_contexts(lab, tmp_path):
    base = tmp_path / "step"
    env = {**{k: v for k, v in lab.env.items() if not k.startswith("STEP")},
           "STEPPATH": str(base)}
    fp = lab.ca.pki.fingerprint
    assert lab.step("path", "--profile", env=env).stdout == f"{base}\n"
    none = lab.step("context", "current", env=env, check=False)
    assert none.returncode == 1 and none.stderr.strip() == "no context selected"

    first = lab.step("ca", "bootstrap", "--ca-url", lab.url, "--fingerprint", fp, "--context",
                     "alpha", env=env)
    alpha = base / "authorities" / "alpha"
    assert first.stderr.splitlines() == [
        f"The root certificate has been saved in {alpha}/certs/root_ca.crt.",
        f"The authority configuration has been saved in {alpha}/config/defaults.json.",
        f"The profile configuration has been saved in "
        f"{base}/profiles/alpha/config/defaults.json."]
    lab.step("ca", "bootstrap", "--ca-url", lab.url, "--fingerprint", fp, "--context", "Beta",
             "--authority", "beta-ca", "--profile", "me", env=env)
    assert json.loads((base / "contexts.json").read_text()) == {
        "alpha": {"authority": "alpha", "profile": "alpha"},
        "Beta": {"authority": "beta-ca", "profile": "me"}}
    assert stat.S_IMODE((base / "contexts.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((base / "current-context.json").stat().st_mode) == 0o644
    assert (base / "authorities" / "beta-ca" / "certs" / "root_ca.crt").exists()

    # the context bootstrapped last is the current one
    assert lab.step("context", "current", env=env).stdout == "Beta\n"
    assert json.loads(lab.step("context", "current", "--json", env=env).stdout) == {
        "name": "Beta", "authority": "beta-ca", "profile": "me"}
    assert lab.step("context", "list", env=env).stdout == "▶ Beta\nalpha\n"
    assert lab.step("path", env=env).stdout == f"{base / 'authorities' / 'beta-ca'}\n"
    assert lab.step("path", "--base", env=env).stdout == f"{base}\n"
    assert lab.step("path", "--profile", env=env).stdout == f"{base / 'profiles' / 'me'}\n"
    # the context's defaults.json gives ca-url and root: no flags needed
    assert lab.step("ca", "health", env=env).stdout == "ok\n"

    selected = lab.step("context", "select", "alpha", env=env)
    assert selected.stderr == "✔ Context: alpha\n"
    assert lab.step("context", "list", env=env).stdout == "▶ alpha\nBeta\n"
    assert lab.step("path", env=env).stdout == f"{alpha}\n"
    # the profile's defaults.json overrides the authority's
    (base / "profiles" / "alpha" / "config" / "defaults.json").write_text(
        json.dumps({"ca-url": "https://127.0.0.1:1"}))
    down = lab.step("ca", "health", env=env, check=False)
    assert down.returncode == 1 and down.stdout == ""  # it went to the profile's ca-url
    # --context chooses another context for one run only
    assert lab.step("ca", "health", "--context", "Beta", env=env).stdout == "ok\n"
    assert lab.step("context", "current", env=env).stdout == "alpha\n"
    unknown = lab.step("context", "select", "gamma", env=env, check=False)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "context 'gamma' not found"

    current = lab.step("context", "remove", "alpha", "--force", env=env, check=False)
    assert current.returncode == 1 and current.stderr.strip() == "cannot remove current context"
    asks = lab.step("context", "remove", "Beta", env=env, check=False)
    assert asks.returncode == 1 and "requires the '--force' flag" in asks.stderr
    assert (base / "authorities" / "beta-ca").exists()
    lab.step("context", "remove", "Beta", "--force", env=env)
    assert not (base / "authorities" / "beta-ca").exists()
    assert not (base / "profiles" / "me").exists()
    assert lab.step("context", "list", env=env).stdout == "▶ alpha\n"
    assert alpha.exists()
    # once contexts are in use, a bootstrap without --context makes one named after the host
    lab.step("ca", "bootstrap", "--ca-url", lab.url, "--fingerprint", fp, env=env)
    assert lab.step("context", "list", env=env).stdout == "▶ 127.0.0.1\nalpha\n"
    assert (base / "authorities" / "127.0.0.1" / "config" / "defaults.json").exists()
