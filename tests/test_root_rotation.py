"""A root rotation walked through with the real `step` and `step-ca`, as docs/root-rotation.md
tells it: a new root and intermediate beside the old (the new intermediate cross-signed by the
old root), both roots in /roots, clients bootstrapped with either fingerprint served, the old
intermediate's certificates renewed, then the old root retired."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from stepca.testing.http import RunningCA, running_ca
from stepca.testing.process import run_step
from stepca.x509util import fingerprint, load_certificates

pytestmark = pytest.mark.e2e


class Client:
    """A host with its own STEPPATH, bootstrapped with one root's fingerprint."""

    def __init__(self, ca: RunningCA, home: Path, root_fingerprint: str,
                 password: Path) -> None:
        self.home, self.password = home, password
        home.mkdir(parents=True)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("STEP")},
                    "STEPPATH": str(home / "step")}
        self.step("ca", "bootstrap", "--ca-url", f"https://127.0.0.1:{ca.port}",
                  "--fingerprint", root_fingerprint)

    def step(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step(*args, env=self.env, cwd=self.home, check=check)

    def certificate(self, name: str) -> list[x509.Certificate]:
        self.step("ca", "certificate", name, f"{name}.crt", f"{name}.key", "--password-file",
                  str(self.password))
        return self.read(f"{name}.crt")

    def read(self, file: str) -> list[x509.Certificate]:
        return load_certificates((self.home / file).read_bytes())


def openssl_verifies(root: Path, bundle: Path, *, through: Path | None = None) -> bool:
    """The leaf of ``bundle`` chains to ``root`` through the bundle's other certificates, or
    through ``through`` (OpenSSL follows the first intermediate that matches by name, so the
    path through a cross-signed twin is checked by offering it alone)."""
    result = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted",
                             str(through or bundle), str(bundle)], capture_output=True,
                            text=True, timeout=30)
    return result.returncode == 0


def test_a_root_rotation_end_to_end(tmp_path: Path) -> None:
    with running_ca(tmp_path / "ca") as ca:
        pki = ca.pki
        password = tmp_path / "password"
        password.write_bytes(pki.password)
        old_root = pki.steppath / "certs" / "root_ca.crt"
        old_fp = pki.fingerprint
        early = Client(ca, tmp_path / "early", old_fp, password)
        early.certificate("early.example")

        # 1. the operator makes a new root and intermediate, and cross-signs the new
        # intermediate with the old root (same subject and key) so old trust reaches it
        op = tmp_path / "op"
        op.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}

        def step(*args: str) -> subprocess.CompletedProcess[str]:
            return run_step(*args, env=env, cwd=op)

        step("certificate", "create", "Test Root CA 2", "root2.crt", "root2.key",
             "--profile", "root-ca", "--password-file", str(password))
        step("certificate", "create", "Test Intermediate CA 2", "int2.crt", "int2.key",
             "--profile", "intermediate-ca", "--ca", "root2.crt", "--ca-key", "root2.key",
             "--ca-password-file", str(password), "--password-file", str(password))
        step("certificate", "create", "Test Intermediate CA 2", "int2.csr", "--csr",
             "--key", "int2.key", "--password-file", str(password))
        cross = step("certificate", "sign", "int2.csr", str(old_root),
                     str(pki.steppath / "secrets" / "root_ca_key"), "--profile",
                     "intermediate-ca", "--password-file", str(password)).stdout
        (op / "int2-cross.crt").write_text(cross)
        (op / "intermediates.crt").write_text((op / "int2.crt").read_text() + cross)
        new_root = op / "root2.crt"
        new_fp = fingerprint(load_certificates(new_root.read_bytes())[0])

        # 2. both roots; the new intermediate signs, its cross-signed twin in the chain
        config = json.loads(ca.process.ca_json.read_text())
        config.update(root=[str(old_root), str(new_root)], crt=str(op / "intermediates.crt"),
                      key=str(op / "int2.key"))
        ca.reload(config, expect="reloaded")
        # a client told of the rotation trusts both roots from now on
        trusted = early.home / "step" / "certs" / "root_ca.crt"
        early.step("ca", "roots", str(trusted), "--force")
        assert {fingerprint(c) for c in load_certificates(trusted.read_bytes())} == {
            old_fp, new_fp}

        fresh = Client(ca, tmp_path / "fresh", new_fp, password)
        issued = fresh.certificate("fresh.example")
        late = Client(ca, tmp_path / "late", old_fp, password)  # not yet told of the new root
        late.certificate("late.example")
        cross_signed = load_certificates(cross.encode())[0]
        for bundle in (fresh.home / "fresh.example.crt", late.home / "late.example.crt"):
            assert cross_signed in load_certificates(bundle.read_bytes())  # the chain has both
            assert openssl_verifies(new_root, bundle)
            assert openssl_verifies(old_root, bundle, through=op / "int2-cross.crt")
        assert issued[0].issuer == load_certificates((op / "int2.crt").read_bytes())[0].subject

        # a certificate of the old intermediate renews, into one of the new
        (early.home / "before.crt").write_bytes((early.home / "early.example.crt").read_bytes())
        early.step("ca", "renew", "--force", "early.example.crt", "early.example.key")
        renewed = early.read("early.example.crt")
        assert renewed[0].serial_number != early.read("before.crt")[0].serial_number
        assert openssl_verifies(new_root, early.home / "early.example.crt")

        # 3. retire the old root: it leaves ca.json, and so the chain
        config.update(root=[str(new_root)], crt=str(op / "int2.crt"))
        ca.reload(config, expect="reloaded")
        fresh.step("ca", "roots", "roots.pem")
        assert [fingerprint(c) for c in fresh.read("roots.pem")] == [new_fp]
        fresh.step("ca", "renew", "--force", "fresh.example.crt", "fresh.example.key")
        early.step("ca", "renew", "--force", "early.example.crt", "early.example.key")
        # a host that only ever trusted the old root is refused until it bootstraps anew
        assert late.step("ca", "certificate", "again.example", "again.crt", "again.key",
                         "--password-file", str(password), check=False).returncode != 0
        late.step("ca", "bootstrap", "--ca-url", f"https://127.0.0.1:{ca.port}",
                  "--fingerprint", new_fp, "--force")
        late.certificate("again.example")
        # and a certificate of the old intermediate no longer renews: nothing trusts its chain
        stale = early.home / "before.crt"
        assert early.step("ca", "renew", "--force", str(stale), "early.example.key",
                          check=False).returncode != 0
