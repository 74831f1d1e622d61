"""``step certificate install|uninstall`` with NSS databases (checked by NSS's own certutil) and
Java's cacerts (checked by a Java TLS client), all under a private HOME and JAVA_HOME."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509

from stepca.testing.process import run_step

NEEDS_CERTUTIL = pytest.mark.skipif(shutil.which("certutil") is None,
                                    reason="needs certutil (apt-get install libnss3-tools)")
NEEDS_JAVA = pytest.mark.skipif(shutil.which("keytool") is None or shutil.which("java") is None,
                                reason="needs a JDK (keytool and java)")


@pytest.fixture
def lab(tmp_path):
    """A root, a leaf for localhost/127.0.0.1 it signed, a non-CA certificate and a HOME."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEP", "JAVA_HOME"))}
    env.update(STEPPATH=str(tmp_path / "steppath"), HOME=str(home))

    def step(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step(*args, env=env, cwd=tmp_path, check=check)

    step("certificate", "create", "Trust Root", "root.crt", "root.key", "--profile", "root-ca",
         "--no-password", "--insecure")
    step("certificate", "create", "localhost", "leaf.crt", "leaf.key", "--ca", "root.crt",
         "--ca-key", "root.key", "--san", "localhost", "--san", "127.0.0.1", "--no-password",
         "--insecure")
    step("certificate", "create", "not a ca", "plain.crt", "plain.key", "--profile",
         "self-signed", "--subtle", "--no-password", "--insecure")
    root = x509.load_pem_x509_certificate((tmp_path / "root.crt").read_bytes())
    return tmp_path, home, env, step, root


def certutil(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["certutil", *args], capture_output=True, text=True, check=check)


def make_nssdb(directory: Path) -> str:
    directory.mkdir(parents=True)
    certutil("-N", "-d", f"sql:{directory}", "--empty-password")
    return f"sql:{directory}"


@NEEDS_CERTUTIL
def test_nss_databases_trust_the_root_after_install_and_not_after_uninstall(lab):
    tmp, home, _, step, root = lab
    shared = make_nssdb(home / ".pki" / "nssdb")
    profile = make_nssdb(home / ".mozilla" / "firefox" / "abcd1234.default-release")
    certutil("-A", "-d", shared, "-t", ",,", "-n", "leaf", "-i", str(tmp / "leaf.crt"))

    def leaf_valid() -> bool:  # NSS validates the leaf for TLS server use with the DB's trust
        return certutil("-V", "-u", "V", "-d", shared, "-n", "leaf", check=False).returncode == 0

    assert not leaf_valid()
    system = tmp / "system"
    done = step("certificate", "install", "root.crt", "--root-dir", str(system), "--firefox")
    assert done.stdout.startswith("Certificate root.crt has been installed.\n")
    for db in (shared, profile):
        assert f"installed in the NSS database {db[4:]}" in done.stderr
        listing = certutil("-L", "-d", db).stdout
        assert f"Trust Root {root.serial_number}" in listing and "C,," in listing
    assert (system / "etc" / "ssl" / "certs" / "ca-certificates.crt").read_text().count(
        "BEGIN CERTIFICATE") == 1
    assert leaf_valid()
    again = step("certificate", "install", "root.crt", "--root-dir", str(system), "--firefox")
    assert certutil("-L", "-d", shared).stdout.count("C,,") == 1, again.stderr  # no duplicate

    removed = step("certificate", "uninstall", "root.crt", "--root-dir", str(system),
                   "--firefox")
    assert removed.stdout.startswith("Certificate root.crt has been removed.\n")
    assert "Trust Root" not in certutil("-L", "-d", profile).stdout
    assert not leaf_valid()
    gone = step("certificate", "uninstall", "root.crt", "--root-dir", str(system), "--firefox",
                check=False)
    assert gone.returncode == 1 and "is not installed in" in gone.stderr
    assert "the NSS database" in gone.stderr


@NEEDS_CERTUTIL
def test_prefix_no_system_and_refusals(lab):
    tmp, home, _, step, root = lab
    shared = make_nssdb(home / ".pki" / "nssdb")
    system = tmp / "system"
    step("certificate", "install", "root.crt", "--firefox", "--no-system", "--prefix", "corp-")
    assert f"corp-{root.serial_number}" in certutil("-L", "-d", shared).stdout
    assert not system.exists()
    # with --root-dir and no --firefox the NSS databases are left alone
    step("certificate", "uninstall", "root.crt", "--root-dir", str(system), check=False)
    assert f"corp-{root.serial_number}" in certutil("-L", "-d", shared).stdout

    refused = step("certificate", "install", "plain.crt", "--firefox", "--no-system",
                   check=False)
    assert refused.returncode == 1 and "is not a CA certificate" in refused.stderr
    assert "not a ca" not in certutil("-L", "-d", shared).stdout
    nothing = step("certificate", "install", "root.crt", "--no-system", check=False)
    assert nothing.returncode == 1 and "no trust store selected" in nothing.stderr
    shutil.rmtree(home / ".pki")
    missing = step("certificate", "install", "root.crt", "--firefox", "--no-system",
                   check=False)
    assert missing.returncode == 1 and "no NSS database found" in missing.stderr


JAVA_CLIENT = """
import javax.net.ssl.*;
public class Client {
    public static void main(String[] args) throws Exception {
        SSLSocketFactory factory = (SSLSocketFactory) SSLSocketFactory.getDefault();
        try (SSLSocket socket = (SSLSocket) factory.createSocket("127.0.0.1",
                Integer.parseInt(args[0]))) {
            SSLParameters params = socket.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            socket.setSSLParameters(params);
            socket.startHandshake();
            System.out.println(new String(socket.getInputStream().readNBytes(5)));
        }
    }
}
"""


def _serve_once(tmp: Path) -> tuple[int, threading.Thread, socket.socket]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "leaf.crt", tmp / "leaf.key")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (OSError, ssl.SSLError):
            pass  # the client reports the failure

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


@NEEDS_JAVA
def test_java_trust_store_install_then_a_java_client_trusts_the_root(lab):
    tmp, _, env, step, root = lab
    jdk = Path(os.path.realpath(shutil.which("keytool"))).parent.parent
    java_home = tmp / "jdk"
    (java_home / "lib" / "security").mkdir(parents=True)
    (java_home / "bin").mkdir()
    for tool in ("keytool", "java"):
        (java_home / "bin" / tool).symlink_to(jdk / "bin" / tool)
    cacerts = java_home / "lib" / "security" / "cacerts"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "other", "-file",
                    str(tmp / "plain.crt"), "-keystore", str(cacerts), "-storepass", "changeit",
                    "-storetype", "PKCS12"], check=True, capture_output=True)
    env["JAVA_HOME"] = str(java_home)
    (tmp / "Client.java").write_text(JAVA_CLIENT)

    def java_client() -> subprocess.CompletedProcess[str]:
        port, thread, listener = _serve_once(tmp)
        try:
            return subprocess.run(
                [str(java_home / "bin" / "java"), f"-Djavax.net.ssl.trustStore={cacerts}",
                 "-Djavax.net.ssl.trustStorePassword=changeit", "Client.java", str(port)],
                cwd=tmp, capture_output=True, text=True, timeout=120)
        finally:
            thread.join(timeout=10)
            listener.close()

    assert "PKIX path building failed" in java_client().stderr
    done = step("certificate", "install", "root.crt", "--java", "--no-system")
    assert f"installed in the Java trust store {cacerts}" in done.stderr
    listing = subprocess.run(["keytool", "-list", "-keystore", str(cacerts), "-storepass",
                              "changeit"], capture_output=True, text=True, check=True).stdout
    assert f"trust root {root.serial_number}" in listing.lower()
    trusted = java_client()
    assert trusted.stdout.strip() == "hello", trusted.stderr

    step("certificate", "uninstall", "root.crt", "--java", "--no-system")
    listing = subprocess.run(["keytool", "-list", "-keystore", str(cacerts), "-storepass",
                              "changeit"], capture_output=True, text=True, check=True).stdout
    assert "trust root" not in listing.lower() and "other" in listing
    assert "PKIX path building failed" in java_client().stderr
