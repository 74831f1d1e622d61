"""``step certificate install|uninstall`` with NSS databases (checked by NSS's own certutil and
vfychain) and Java keystores (checked by keytool and a Java TLS client), all under a private
HOME, JAVA_HOME or keystore file: the machine's own stores are never touched here."""

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

NEEDS_CERTUTIL = pytest.mark.skipif(
    shutil.which("certutil") is None or shutil.which("vfychain") is None,
    reason="needs NSS's certutil and vfychain (apt-get install libnss3-tools)")
NEEDS_KEYTOOL = pytest.mark.skipif(shutil.which("keytool") is None,
                                   reason="needs a JDK's keytool (apt-get install "
                                          "default-jdk-headless)")
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


def vfychain_accepts(db: str, leaf: Path) -> bool:
    """NSS's own verifier: is ``leaf`` a valid TLS server certificate with the trust of ``db``?"""
    done = subprocess.run(["vfychain", "-d", db, "-u", "1", "-pp", "-a", str(leaf)],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


def nss_trust(db: str, nickname: str) -> str | None:
    """The trust flags of ``nickname`` in ``db`` (``C,,``), or None when it is absent."""
    for line in certutil("-L", "-d", db).stdout.splitlines():
        if line.startswith(nickname + "  "):
            return line.split()[-1]
    return None


@NEEDS_CERTUTIL
def test_nss_databases_trust_the_root_after_install_and_not_after_uninstall(lab):
    tmp, home, _, step, root = lab
    shared = make_nssdb(home / ".pki" / "nssdb")
    profile = make_nssdb(home / ".mozilla" / "firefox" / "abcd1234.default-release")
    snap = make_nssdb(home / "snap" / "firefox" / "common" / ".mozilla" / "firefox"
                      / "wxyz9876.default")
    dbs = (shared, profile, snap)
    nickname = f"Trust Root {root.serial_number}"
    certutil("-A", "-d", shared, "-t", ",,", "-n", "leaf", "-i", str(tmp / "leaf.crt"))

    def leaf_valid() -> bool:  # certutil validates the leaf for TLS server use with the trust
        return certutil("-V", "-u", "V", "-d", shared, "-n", "leaf", check=False).returncode == 0

    assert not leaf_valid()
    assert not any(vfychain_accepts(db, tmp / "leaf.crt") for db in dbs)
    system = tmp / "system"
    done = step("certificate", "install", "root.crt", "--root-dir", str(system), "--firefox")
    assert done.stdout.startswith("Certificate root.crt has been installed.\n")
    for db in dbs:
        assert f"installed in the NSS database {db[4:]}" in done.stderr
        assert nss_trust(db, nickname) == "C,,"
        assert vfychain_accepts(db, tmp / "leaf.crt")
    assert (system / "etc" / "ssl" / "certs" / "ca-certificates.crt").read_text().count(
        "BEGIN CERTIFICATE") == 1
    assert leaf_valid()
    again = step("certificate", "install", "root.crt", "--root-dir", str(system), "--firefox")
    assert certutil("-L", "-d", shared).stdout.count("C,,") == 1, again.stderr  # no duplicate

    removed = step("certificate", "uninstall", "root.crt", "--root-dir", str(system),
                   "--firefox")
    assert removed.stdout.startswith("Certificate root.crt has been removed.\n")
    for db in dbs:
        assert f"removed from the NSS database {db[4:]}" in removed.stderr
        assert nss_trust(db, nickname) is None
        assert not vfychain_accepts(db, tmp / "leaf.crt")
    assert not leaf_valid()
    assert "BEGIN" not in (system / "etc" / "ssl" / "certs" / "ca-certificates.crt").read_text()
    gone = step("certificate", "uninstall", "root.crt", "--root-dir", str(system), "--firefox",
                check=False)
    assert gone.returncode == 1 and "is not installed in" in gone.stderr
    assert "the NSS database" in gone.stderr and "Traceback" not in gone.stderr


@NEEDS_CERTUTIL
def test_no_system_and_prefix_leave_the_system_store_alone(lab):
    tmp, home, _, step, root = lab
    shared = make_nssdb(home / ".pki" / "nssdb")
    system = tmp / "system"
    # the system store first, alone: with --root-dir NSS is changed only when asked for
    step("certificate", "install", "root.crt", "--root-dir", str(system))
    local = sorted((system / "usr" / "local" / "share" / "ca-certificates").glob("*.crt"))
    assert [p.name for p in local] == [f"Trust_Root_{root.serial_number}.crt"]
    assert nss_trust(shared, f"Trust Root {root.serial_number}") is None
    snapshot = {p: p.stat().st_mtime_ns for p in system.rglob("*")}

    step("certificate", "install", "root.crt", "--firefox", "--no-system", "--prefix", "corp-")
    assert nss_trust(shared, f"corp-{root.serial_number}") == "C,,"
    step("certificate", "uninstall", "root.crt", "--firefox", "--no-system")
    assert nss_trust(shared, f"corp-{root.serial_number}") is None
    assert {p: p.stat().st_mtime_ns for p in system.rglob("*")} == snapshot

    clash = step("certificate", "install", "root.crt", "--root-dir", str(system), "--no-system",
                 check=False)
    assert clash.returncode == 1
    assert clash.stderr == "flag '--root-dir' is incompatible with '--no-system'\n"


@NEEDS_CERTUTIL
def test_a_root_present_without_tls_trust_gets_it(lab):
    tmp, home, _, step, _ = lab
    shared = make_nssdb(home / ".pki" / "nssdb")
    certutil("-A", "-d", shared, "-t", ",C,", "-n", "imported", "-i", str(tmp / "root.crt"))
    assert not vfychain_accepts(shared, tmp / "leaf.crt")
    step("certificate", "install", "root.crt", "--firefox", "--no-system")
    assert nss_trust(shared, "imported") == "C,C,"  # its e-mail trust is kept
    assert vfychain_accepts(shared, tmp / "leaf.crt")
    step("certificate", "uninstall", "root.crt", "--firefox", "--no-system")
    assert nss_trust(shared, "imported") is None


@NEEDS_CERTUTIL
def test_refusals_are_one_line_and_change_nothing(lab, tmp_path):
    tmp, home, env, _, _ = lab
    shared = make_nssdb(home / ".pki" / "nssdb")
    system = tmp / "system"

    def refused(*args: str, path: str | None = None) -> str:
        run_env = {**env, "PATH": path} if path is not None else env
        done = run_step("certificate", *args, env=run_env, cwd=tmp, check=False)
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
        return done.stderr

    assert "plain.crt is not a CA certificate" in refused(
        "install", "plain.crt", "--root-dir", str(system), "--firefox")
    assert "no trust store selected" in refused("install", "root.crt", "--no-system")
    # certutil missing: said before the system store changes
    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    message = refused("install", "root.crt", "--root-dir", str(system), "--firefox",
                      path=str(empty_path))
    assert "need certutil" in message and "libnss3-tools" in message
    assert not system.exists()
    assert "Trust Root" not in certutil("-L", "-d", shared).stdout
    shutil.rmtree(home / ".pki")
    message = refused("install", "root.crt", "--firefox", "--no-system")
    assert "no NSS database found" in message and str(home / ".pki" / "nssdb") in message
    message = refused("uninstall", "root.crt", "--root-dir", str(system))
    assert "is not installed in the system trust store" in message
    assert not system.exists()  # looking did not create it


def keytool_list(keystore: Path) -> str:
    return subprocess.run(["keytool", "-list", "-keystore", str(keystore), "-storepass",
                           "changeit"], capture_output=True, text=True, check=True).stdout


@NEEDS_KEYTOOL
def test_java_keystore_file_install_and_uninstall(lab, tmp_path):
    tmp, _, env, step, root = lab
    keystore = tmp / "truststore.p12"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "other", "-file",
                    str(tmp / "plain.crt"), "-keystore", str(keystore), "-storepass",
                    "changeit", "-storetype", "PKCS12"], check=True, capture_output=True)
    alias = f"corp-{root.serial_number}"
    done = step("certificate", "install", "root.crt", "--no-system", "--java-keystore",
                str(keystore), "--prefix", "corp-")
    assert f"installed in the Java trust store {keystore}" in done.stderr
    listing = keytool_list(keystore)
    assert f"{alias}," in listing and "trustedCertEntry" in listing
    step("certificate", "install", "root.crt", "--no-system", "--java-keystore", str(keystore))
    assert keytool_list(keystore).count("trustedCertEntry") == 2  # other + root, once

    removed = step("certificate", "uninstall", "root.crt", "--no-system", "--java-keystore",
                   str(keystore))
    assert f"removed from the Java trust store {keystore}" in removed.stderr
    listing = keytool_list(keystore)
    assert alias not in listing and "other," in listing
    gone = step("certificate", "uninstall", "root.crt", "--no-system", "--java-keystore",
                str(keystore), check=False)
    assert gone.returncode == 1
    assert gone.stderr == (f"certificate root.crt is not installed in the Java trust store "
                           f"{keystore}\n")

    missing = step("certificate", "install", "root.crt", "--no-system", "--java-keystore",
                   str(tmp / "nope.p12"), check=False)
    assert missing.returncode == 1
    assert missing.stderr == f"the Java trust store {tmp / 'nope.p12'} does not exist\n"
    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    no_jdk = run_step("certificate", "install", "root.crt", "--no-system", "--java",
                      env={**env, "PATH": str(empty_path)}, cwd=tmp, check=False)
    assert no_jdk.returncode == 1 and "the Java trust store needs keytool" in no_jdk.stderr


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
                cwd=tmp, capture_output=True, text=True, timeout=120, check=False)
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
