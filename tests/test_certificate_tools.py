"""step certificate create/sign/verify/lint/bundle/format/key/p12/install through the real CLI,
with openssl as the independent checker."""

from __future__ import annotations

import json
import os
import shlex
import socket
import ssl
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stepca.testing.process import run_step

PASSWORD = "correct horse battery staple"


def openssl(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          check=check)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A root, an intermediate and a bundled leaf made by ``step certificate create``."""
    tmp = tmp_path_factory.mktemp("certtools")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env["STEPPATH"] = str(tmp / "steppath")
    (tmp / "pw").write_text(PASSWORD + "\n")  # trailing newline is trimmed, as step does
    run = _runner(tmp, env)
    run("certificate", "create", "Test Root", "root.crt", "root.key", "--profile", "root-ca",
        "--password-file", "pw")
    run("certificate", "create", "Test Intermediate", "int.crt", "int.key", "--profile",
        "intermediate-ca", "--ca", "root.crt", "--ca-key", "root.key", "--ca-password-file",
        "pw", "--password-file", "pw")
    run("certificate", "create", "localhost", "leaf.crt", "leaf.key", "--ca", "int.crt",
        "--ca-key", "int.key", "--ca-password-file", "pw", "--san", "localhost", "--san",
        "127.0.0.1", "--bundle", "--no-password", "--insecure")
    return tmp, env


def _runner(tmp: Path, env: dict[str, str]):
    def run(*args: str, check: bool = True, input: str | None = None):
        return run_step(*args, env=env, cwd=tmp, check=check, input=input)
    return run


def step(pki, *args: str, check: bool = True):
    tmp, env = pki
    return run_step(*args, env=env, cwd=tmp, check=check)


def load(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


# -- create ----------------------------------------------------------------------------------------

def test_create_chain_passes_openssl_verify(pki):
    tmp, _ = pki
    out = openssl("verify", "-CAfile", "root.crt", "-untrusted", "int.crt", "leaf.crt", cwd=tmp)
    assert out.stdout.strip() == "leaf.crt: OK"
    leaf, issuer = load(tmp / "leaf.crt")  # --bundle appended the issuer
    assert issuer == load(tmp / "int.crt")[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24)


def test_create_profiles_and_permissions(pki):
    tmp, _ = pki
    root, inter = load(tmp / "root.crt")[0], load(tmp / "int.crt")[0]
    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    int_bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length == 1
    assert int_bc.value.ca and int_bc.value.path_length == 0
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(hours=87600)
    for name in ("root.crt", "root.key", "int.key", "leaf.key"):
        assert stat.S_IMODE((tmp / name).stat().st_mode) == 0o600


def test_create_status_lines_on_stderr(pki):
    result = step(pki, "certificate", "create", "status.example.com", "status.crt",
                  "status.key", "--ca", "int.crt", "--ca-key", "int.key", "--ca-password-file",
                  "pw", "--password-file", "pw")
    assert result.stdout == ""
    assert "Your certificate has been saved in status.crt." in result.stderr
    assert "Your private key has been saved in status.key." in result.stderr


def test_created_key_is_encrypted_and_openssl_decrypts_it(pki):
    tmp, _ = pki
    assert b"ENCRYPTED PRIVATE KEY" in (tmp / "root.key").read_bytes()
    wrong = openssl("pkey", "-in", "root.key", "-passin", "pass:nope", "-noout", cwd=tmp,
                    check=False)
    assert wrong.returncode != 0
    openssl("pkey", "-in", "root.key", "-passin", "file:pw", "-noout", cwd=tmp)
    pub = openssl("pkey", "-in", "root.key", "-passin", "file:pw", "-pubout", cwd=tmp).stdout
    root = load(tmp / "root.crt")[0]
    assert pub.encode() == root.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_create_csr_passes_openssl_req_verify(pki):
    tmp, _ = pki
    result = step(pki, "certificate", "create", "csr.example.com", "csr.csr", "csr.key",
                  "--csr", "--kty", "RSA", "--size", "2048", "--no-password", "--insecure")
    assert "Your certificate signing request has been saved in csr.csr." in result.stderr
    out = openssl("req", "-verify", "-in", "csr.csr", "-noout", "-subject", cwd=tmp)
    assert "csr.example.com" in out.stdout


def test_create_without_password_source_fails_naming_the_flag(pki):
    result = step(pki, "certificate", "create", "nopw.example.com", "nopw.crt", "nopw.key",
                  "--ca", "int.crt", "--ca-key", "int.key", "--ca-password-file", "pw",
                  check=False)
    assert result.returncode == 1
    assert "--password-file" in result.stderr
    assert not (pki[0] / "nopw.key").exists()


@pytest.mark.parametrize("args, message", [
    (["x", "a.crt", "a.key", "--no-password"], "flag '--no-password' requires the '--insecure'"),
    (["x", "a.crt", "a.key", "--profile", "self-signed", "--no-password", "--insecure"],
     "'--profile self-signed' requires the '--subtle' flag"),
    (["x", "a.crt", "a.key", "--no-password", "--insecure"], "requires the '--ca' flag"),
    (["x", "same", "same", "--profile", "root-ca"], "cannot be equal"),
    (["x", "a.csr", "a.key", "--csr", "--not-after", "1h"],
     "flag '--csr' is incompatible with '--not-after'"),
])
def test_create_flag_rules(pki, args, message):
    result = step(pki, "certificate", "create", *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.parametrize("args, message", [
    (["bücher.example"], "DNS name 'bücher.example' is not ASCII: request its A-label "
                         "'xn--bcher-kva.example' instead"),
    (["x", "--san", "ops@bücher.example"], "invalid subject alternative name: RFC822Name"),
], ids=["dns", "email"])
def test_create_refuses_names_no_certificate_can_carry(pki, args, message):
    subject, *more = args
    result = step(pki, "certificate", "create", subject, "idn.crt", "idn.key", *more, "--ca",
                  "int.crt", "--ca-key", "int.key", "--ca-password-file", "pw", "--no-password",
                  "--insecure", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (pki[0] / "idn.crt").exists()


def test_create_refuses_to_overwrite_without_force(pki):
    result = step(pki, "certificate", "create", "Test Root", "root.crt", "other.key",
                  "--profile", "root-ca", "--no-password", "--insecure", check=False)
    assert result.returncode == 1
    assert "already exists" in result.stderr


# -- sign ------------------------------------------------------------------------------------------

def _openssl_csr(tmp: Path, name: str) -> None:
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-subj", f"/CN={name}", "-addext",
            f"subjectAltName=DNS:{name}", "-out", f"{name}.csr", cwd=tmp)


def test_sign_prints_a_leaf_openssl_verifies(pki):
    tmp, _ = pki
    _openssl_csr(tmp, "signed.example.com")
    result = step(pki, "certificate", "sign", "signed.example.com.csr", "int.crt", "int.key",
                  "--password-file", "pw", "--bundle")
    assert result.stdout.count("BEGIN CERTIFICATE") == 2
    (tmp / "signed.crt").write_text(result.stdout)
    out = openssl("verify", "-CAfile", "root.crt", "-untrusted", "int.crt", "signed.crt",
                  cwd=tmp)
    assert out.stdout.strip() == "signed.crt: OK"
    leaf = load(tmp / "signed.crt")[0]
    assert leaf.subject.rfc4514_string() == "CN=signed.example.com"


@pytest.mark.parametrize("kind, make", [
    ("pkcs8", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-aes256", "-pass", "file:pw", "-out", "KEY"]),
    ("ec-legacy", None),
    ("rsa-legacy", ["genrsa", "-aes256", "-traditional", "-passout", "file:pw", "-out", "KEY",
                    "2048"]),
])
def test_sign_reads_keys_openssl_encrypted(pki, kind, make):
    tmp, _ = pki
    key = f"ossl-{kind}.key"
    if make is None:
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "plain-ec.key",
                cwd=tmp)
        openssl("ec", "-in", "plain-ec.key", "-aes256", "-passout", "file:pw", "-out", key,
                cwd=tmp)
        assert "Proc-Type: 4,ENCRYPTED" in (tmp / key).read_text()
    else:
        openssl(*[key if a == "KEY" else a for a in make], cwd=tmp)
    if kind == "rsa-legacy":
        assert "Proc-Type: 4,ENCRYPTED" in (tmp / key).read_text()
    openssl("req", "-x509", "-new", "-key", key, "-passin", "file:pw", "-subj",
            f"/CN=OpenSSL {kind} CA", "-days", "2", "-addext",
            "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign",
            "-out", f"ossl-{kind}.crt", cwd=tmp)
    _openssl_csr(tmp, f"{kind}.example.com")
    result = step(pki, "certificate", "sign", f"{kind}.example.com.csr", f"ossl-{kind}.crt", key,
                  "--password-file", "pw")
    (tmp / f"{kind}-leaf.crt").write_text(result.stdout)
    out = openssl("verify", "-CAfile", f"ossl-{kind}.crt", f"{kind}-leaf.crt", cwd=tmp)
    assert out.stdout.strip().endswith("OK")


def test_sign_refusals(pki):
    tmp, _ = pki
    _openssl_csr(tmp, "refused.example.com")
    wrong_key = step(pki, "certificate", "sign", "refused.example.com.csr", "root.crt",
                     "int.key", "--password-file", "pw", check=False)
    assert wrong_key.returncode == 1 and "does not match" in wrong_key.stderr
    not_ca = step(pki, "certificate", "sign", "refused.example.com.csr", "leaf.crt",
                  "leaf.key", check=False)
    assert not_ca.returncode == 1 and "not a certificate authority" in not_ca.stderr
    pathlen = step(pki, "certificate", "sign", "refused.example.com.csr", "int.crt", "int.key",
                   "--password-file", "pw", "--profile", "intermediate-ca", check=False)
    assert pathlen.returncode == 1 and "path length" in pathlen.stderr
    # a CSR whose signature does not cover its content
    csr = x509.load_pem_x509_csr((tmp / "refused.example.com.csr").read_bytes())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    index = der.find(b"refused")
    der[index] = ord("R")
    (tmp / "tampered.csr").write_bytes(der)
    tampered = step(pki, "certificate", "sign", "tampered.csr", "int.crt", "int.key",
                    "--password-file", "pw", check=False)
    assert tampered.returncode == 1 and "signature" in tampered.stderr


# -- verify ----------------------------------------------------------------------------------------

def test_verify_success_is_silent_and_verbose_prints_steps(pki):
    quiet = step(pki, "certificate", "verify", "leaf.crt", "--roots", "root.crt")
    assert quiet.stdout == "" and quiet.stderr == ""
    loud = step(pki, "certificate", "verify", "leaf.crt", "--roots", "root.crt", "--host",
                "localhost", "--verbose")
    assert loud.stdout.splitlines() == ["certificate validated against roots",
                                        "certificate host name validated",
                                        "certficiate is valid"]


def _refused(pki, *args: str) -> str:
    result = step(pki, "certificate", "verify", *args, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("failed to verify certificate: ")
    return result.stderr


def test_verify_refuses_expired(pki):
    step(pki, "certificate", "create", "old.example.com", "old.crt", "old.key", "--ca",
         "int.crt", "--ca-key", "int.key", "--ca-password-file", "pw", "--bundle",
         "--not-before", "-48h", "--not-after", "-24h", "--no-password", "--insecure")
    assert "certificate has expired" in _refused(pki, "old.crt", "--roots", "root.crt")


def test_verify_refuses_wrong_host(pki):
    reason = _refused(pki, "leaf.crt", "--roots", "root.crt", "--host", "evil.example.com")
    assert "valid for localhost, 127.0.0.1, not evil.example.com" in reason


def test_verify_refuses_client_only_eku_for_a_host(pki):
    tmp, _ = pki
    _openssl_csr(tmp, "client.example.com")
    openssl("pkey", "-in", "int.key", "-passin", "file:pw", "-out", "int-plain.key", cwd=tmp)
    (tmp / "client.ext").write_text("extendedKeyUsage=clientAuth\n"
                                    "subjectAltName=DNS:client.example.com\n"
                                    "authorityKeyIdentifier=keyid\n"
                                    "keyUsage=critical,digitalSignature\n")
    openssl("x509", "-req", "-in", "client.example.com.csr", "-CA", "int.crt", "-CAkey",
            "int-plain.key", "-days", "1", "-extfile", "client.ext", "-out", "client.crt",
            cwd=tmp)
    (tmp / "client-chain.crt").write_bytes((tmp / "client.crt").read_bytes()
                                           + (tmp / "int.crt").read_bytes())
    step(pki, "certificate", "verify", "client-chain.crt", "--roots", "root.crt")  # any EKU
    reason = _refused(pki, "client-chain.crt", "--roots", "root.crt", "--host",
                      "client.example.com")
    assert "incompatible key usage" in reason


def test_verify_refuses_broken_chain(pki):
    tmp, _ = pki
    (tmp / "leaf-only.crt").write_bytes(
        load(tmp / "leaf.crt")[0].public_bytes(serialization.Encoding.PEM))
    assert "signed by unknown authority" in _refused(pki, "leaf-only.crt", "--roots",
                                                     "root.crt")
    # the whole chain, against a root that did not issue it
    step(pki, "certificate", "create", "Other Root", "other-root.crt", "other-root.key",
         "--profile", "root-ca", "--no-password", "--insecure")
    assert "signed by unknown authority" in _refused(pki, "leaf.crt", "--roots",
                                                     "other-root.crt")


def test_verify_refuses_name_constraint_violation(pki):
    tmp, _ = pki
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Constrained Root")])
    now = datetime.now(UTC)
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), True)
            .add_extension(x509.NameConstraints([x509.DNSName("example.com")], None), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256()))
    (tmp / "nc-root.crt").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp / "nc-root.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    for host in ("ok.example.com", "evil.test"):
        step(pki, "certificate", "create", host, f"nc-{host}.crt", f"nc-{host}.key", "--ca",
             "nc-root.crt", "--ca-key", "nc-root.key", "--no-password", "--insecure")
    step(pki, "certificate", "verify", "nc-ok.example.com.crt", "--roots", "nc-root.crt",
         "--host", "ok.example.com")
    openssl_says = openssl("verify", "-CAfile", "nc-root.crt", "nc-evil.test.crt", cwd=tmp,
                           check=False)
    assert openssl_says.returncode != 0  # the independent checker agrees
    reason = _refused(pki, "nc-evil.test.crt", "--roots", "nc-root.crt")
    assert "not authorized to sign for this name" in reason


# -- lint ------------------------------------------------------------------------------------------

def test_lint_clean_certificate(pki):
    step(pki, "certificate", "create", "lint.example.com", "lint.crt", "lint.key", "--ca",
         "int.crt", "--ca-key", "int.key", "--ca-password-file", "pw", "--no-password",
         "--insecure")
    result = step(pki, "certificate", "lint", "lint.crt")
    report = json.loads(result.stdout)
    assert report["result"] == "pass"
    assert all(f["severity"] not in ("FATAL", "ERROR") for f in report["findings"])


def test_lint_reports_errors_with_non_zero_exit(pki):
    tmp, _ = pki
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "zero.key", "-subj", "/CN=zero", "-set_serial", "0", "-days", "1",
            "-out", "zero.crt", cwd=tmp)
    result = step(pki, "certificate", "lint", "zero.crt", check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    codes = {f["code"] for f in report["findings"] if f["severity"] == "ERROR"}
    assert "pkix.certificate_serial_number_out_of_range" in codes
    assert report["result"] == "fail"


# -- bundle, format, key ---------------------------------------------------------------------------

def test_bundle_format_key(pki):
    tmp, _ = pki
    (tmp / "leaf-only.crt").write_bytes(
        load(tmp / "leaf.crt")[0].public_bytes(serialization.Encoding.PEM))
    result = step(pki, "certificate", "bundle", "leaf-only.crt", "int.crt", "bundle.crt")
    assert "Your certificate has been saved in bundle.crt." in result.stderr
    assert load(tmp / "bundle.crt") == load(tmp / "leaf.crt")
    assert stat.S_IMODE((tmp / "bundle.crt").stat().st_mode) == 0o600

    step(pki, "certificate", "format", "leaf.crt", "--out", "leaf.der")
    subject = openssl("x509", "-inform", "DER", "-in", "leaf.der", "-noout", "-subject",
                      cwd=tmp).stdout
    assert "localhost" in subject
    back = step(pki, "certificate", "format", "leaf.der").stdout
    assert back.encode() == (tmp / "leaf-only.crt").read_bytes()

    pub = step(pki, "certificate", "key", "leaf.crt").stdout
    expected = openssl("x509", "-in", "leaf.crt", "-noout", "-pubkey", cwd=tmp).stdout
    assert pub == expected
    _openssl_csr(tmp, "key.example.com")
    from_csr = step(pki, "certificate", "key", "key.example.com.csr").stdout
    assert from_csr == openssl("req", "-in", "key.example.com.csr", "-noout", "-pubkey",
                               cwd=tmp).stdout


# -- p12 -------------------------------------------------------------------------------------------

def test_p12_opens_with_openssl(pki):
    tmp, _ = pki
    result = step(pki, "certificate", "p12", "leaf.p12", "leaf.crt", "leaf.key", "--ca",
                  "root.crt", "--password-file", "pw")
    assert "leaf.p12" in result.stderr
    info = openssl("pkcs12", "-info", "-in", "leaf.p12", "-passin", "file:pw", "-nokeys",
                   cwd=tmp)
    assert "AES-256-CBC" in info.stderr and "hmacWithSHA256" in info.stderr
    assert info.stdout.count("BEGIN CERTIFICATE") == 3  # leaf, intermediate, root
    keys = openssl("pkcs12", "-in", "leaf.p12", "-passin", "file:pw", "-nocerts", "-nodes",
                   cwd=tmp)
    assert "PRIVATE KEY" in keys.stdout
    wrong = openssl("pkcs12", "-info", "-in", "leaf.p12", "-passin", "pass:wrong", "-noout",
                    cwd=tmp, check=False)
    assert wrong.returncode != 0


def test_p12_trust_store_and_no_password_rules(pki):
    tmp, _ = pki
    step(pki, "certificate", "p12", "trust.p12", "--ca", "root.crt", "--password-file", "pw")
    info = openssl("pkcs12", "-in", "trust.p12", "-passin", "file:pw", "-nokeys", cwd=tmp)
    assert info.stdout.count("BEGIN CERTIFICATE") == 1
    refused = step(pki, "certificate", "p12", "plain.p12", "leaf.crt", "leaf.key",
                   "--no-password", check=False)
    assert refused.returncode == 1 and "--insecure" in refused.stderr
    mismatch = step(pki, "certificate", "p12", "bad.p12", "leaf.crt", "root.key",
                    "--key-password-file", "pw", "--password-file", "pw", check=False)
    assert mismatch.returncode == 1 and "does not match" in mismatch.stderr


# -- install / uninstall ---------------------------------------------------------------------------

def test_install_prefix_then_tls_client_trusts_the_root(pki):
    tmp, _ = pki
    prefix = tmp / "trust"
    result = step(pki, "certificate", "install", "root.crt", "--root-dir", str(prefix))
    assert result.stdout.startswith("Certificate root.crt has been installed.\n")
    bundle_file = prefix / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    assert load(bundle_file) == load(tmp / "root.crt")
    assert list((prefix / "usr" / "local" / "share" / "ca-certificates").glob("*.crt"))

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    openssl("pkey", "-in", "leaf.key", "-out", "leaf-plain.key", cwd=tmp)
    server_ctx.load_cert_chain(tmp / "leaf.crt", tmp / "leaf-plain.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (OSError, ssl.SSLError) as exc:  # reported by the client side
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(bundle_file))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
                client_ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.recv(5) == b"hello"
    finally:
        thread.join(timeout=10)
        listener.close()
    assert not errors

    removed = step(pki, "certificate", "uninstall", "root.crt", "--root-dir", str(prefix))
    assert removed.stdout.startswith("Certificate root.crt has been removed.\n")
    assert "BEGIN CERTIFICATE" not in bundle_file.read_text()
    again = step(pki, "certificate", "uninstall", "root.crt", "--root-dir", str(prefix),
                 check=False)
    assert again.returncode == 1 and "not installed" in again.stderr


def test_help_pages_exist_for_every_command():
    from stepca_cli.commands.certificate_tools import COMMANDS

    folder = Path(__file__).parents[1] / "cli" / "stepca_cli" / "helpdocs" / "certificate"
    for command in COMMANDS:
        text = (folder / f"{command.name}.md").read_text()
        for section in ("## DESCRIPTION", "## EXIT CODES", "## EXAMPLES"):
            assert section in text, (command.name, section)
        examples = [line[2:] for line in text.splitlines() if line.startswith("$ step ")]
        assert examples, command.name
        for example in examples:
            args = shlex.split(example)
            assert args[:3] == ["step", "certificate", command.name], example
            with command.make_context(command.name, args[3:]):  # parses, runs nothing
                pass


def test_create_reuses_an_existing_key_without_copying_it(pki):
    tmp, _ = pki
    step(pki, "certificate", "create", "reuse.example.com", "reuse.crt", "--key", "int.key",
         "--password-file", "pw", "--profile", "root-ca")
    reused = load(tmp / "reuse.crt")[0]
    assert reused.public_key() == load(tmp / "int.crt")[0].public_key()
    refused = step(pki, "certificate", "create", "reuse.example.com", "reuse2.crt", "copy.key",
                   "--key", "int.key", "--password-file", "pw", "--profile", "root-ca",
                   check=False)
    assert refused.returncode == 1 and not (tmp / "copy.key").exists()


def test_create_ed25519_leaf_verifies_with_openssl(pki):
    tmp, _ = pki
    step(pki, "certificate", "create", "okp.example.com", "okp.crt", "okp.key", "--kty", "OKP",
         "--ca", "int.crt", "--ca-key", "int.key", "--ca-password-file", "pw",
         "--password-file", "pw")
    out = openssl("verify", "-CAfile", "root.crt", "-untrusted", "int.crt", "okp.crt", cwd=tmp)
    assert out.stdout.strip() == "okp.crt: OK"
    openssl("pkey", "-in", "okp.key", "-passin", "file:pw", "-noout", cwd=tmp)
