"""Trust stores ``step certificate install|uninstall`` writes: the Debian-family system store,
NSS databases (Chromium's shared one and Firefox profiles) and Java's ``cacerts``.

Each store answers three questions about a certificate, compared by its DER bytes: is it
there, add it under a name, remove every copy. The tools are the platform's own
(``update-ca-certificates``, NSS ``certutil``, ``keytool``); nothing is parsed from their
databases directly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from stepca.x509util import load_certificates, write_private

from stepca_cli import ui
from stepca_cli.errors import StepError

__all__ = ["DebianStore", "JavaStore", "NSSStore", "entry_name", "java_store", "nss_stores",
           "select"]

DEBIAN_LOCAL_CERTS = Path("/usr/local/share/ca-certificates")
DEBIAN_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
JAVA_STOREPASS = "changeit"  # the well-known password of every JDK's cacerts
TOOL_TIMEOUT = 60


def entry_name(cert: x509.Certificate, prefix: str | None) -> str:
    """step's naming: ``<prefix><serial>``, or ``<CN> <serial>`` without a prefix."""
    if prefix:
        return f"{prefix}{cert.serial_number}"
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return f"{cn[0].value if cn else 'certificate'} {cert.serial_number}"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _run(args: list[str], *, what: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False)
    except OSError as exc:
        raise StepError(f"error running {args[0]}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise StepError(f"error running {args[0]}: no answer in {TOOL_TIMEOUT} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise StepError(f"error {what}: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done.stdout


@contextmanager
def _pem_file(cert: x509.Certificate) -> Iterator[str]:
    """The certificate in a temporary PEM file, for tools that only read files."""
    with tempfile.NamedTemporaryFile(suffix=".crt") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
        handle.flush()
        yield handle.name


def select(*, root_dir: str | None = None, java: bool = False, firefox: bool = False,
           no_system: bool = False, all_: bool = False, java_keystore: str | None = None,
           installing: bool) -> list[Any]:
    """The stores a command works on: the system store unless ``no_system``; NSS databases
    with ``firefox``, and those present when the real system store is used; Java with
    ``java`` or a ``java_keystore`` file; ``all_`` asks for every kind. Installing checks
    every store is writable before anything changes."""
    if root_dir and no_system:
        raise StepError("flag '--root-dir' is incompatible with '--no-system'")
    stores: list[Any] = [] if no_system else [DebianStore(root_dir)]
    if firefox or all_ or (root_dir is None and not no_system):
        found = nss_stores(Path.home())
        if (firefox or all_) and not found:
            raise StepError(f"no NSS database found (looked in {Path.home() / '.pki' / 'nssdb'} "
                            "and the Firefox profiles)")
        if found and not (firefox or all_) and not shutil.which("certutil"):
            ui.info("skipping the NSS databases: certutil is not installed "
                    "(apt-get install libnss3-tools)")
            found = []
        if found:
            NSSStore.tool()  # fail before the system store changes, not half-way
        stores.extend(found)
    if java or all_ or java_keystore:
        stores.append(java_store(java_keystore))
    if not stores:
        raise StepError("no trust store selected: --no-system needs --firefox, --java or --all")
    if installing:
        for store in stores:
            store.check_writable()
    return stores


# -- Debian-family system store ----------------------------------------------------------------

class DebianStore:
    """Certificates in ``local`` (``*.crt``), the bundle in ``bundle``. With a root directory
    everything lives under it instead of ``/``."""

    def __init__(self, root_dir: str | None) -> None:
        # absolute: update-ca-certificates changes directory before reading its folders
        self.root_dir = Path(root_dir).absolute() if root_dir else None
        root = self.root_dir or Path("/")
        self.local = root / DEBIAN_LOCAL_CERTS.relative_to("/")
        self.bundle = root / DEBIAN_BUNDLE.relative_to("/")

    @property
    def label(self) -> str:
        return f"the system trust store {self.local}"

    def check_writable(self) -> None:
        if self.root_dir is not None:
            self.root_dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root_dir, os.W_OK):
                raise StepError(f"the trust store under {self.root_dir} is not writable")
            return
        if not self.local.is_dir() or not shutil.which("update-ca-certificates"):
            raise StepError("install is not supported on this system: it has no "
                            f"{self.local} and update-ca-certificates (Debian/Ubuntu store); "
                            "use --no-system with --firefox or --java")
        if not os.access(self.local, os.W_OK) or not os.access(self.bundle.parent, os.W_OK):
            raise StepError(f"the system trust store {self.local} is not writable: run the "
                            "command as root (e.g. with sudo), or use --root-dir DIR for a "
                            "private store")

    def _files_with(self, cert: x509.Certificate) -> list[Path]:
        der = _der(cert)
        found = []
        for path in sorted(self.local.glob("*.crt")) if self.local.is_dir() else []:
            try:
                if any(_der(c) == der for c in load_certificates(path.read_bytes())):
                    found.append(path)
            except (OSError, ValueError):
                continue
        return found

    def contains(self, cert: x509.Certificate) -> bool:
        return bool(self._files_with(cert))

    def add(self, cert: x509.Certificate, name: str) -> None:
        self.check_writable()
        if not self._files_with(cert):
            # the Debian tool wants no spaces and a .crt suffix
            target = self.local / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".crt")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_private(target, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
            except OSError as exc:
                raise StepError(f"error writing {target}: {exc.strerror}") from None
        self._refresh()

    def remove(self, cert: x509.Certificate) -> bool:
        found = self._files_with(cert)
        if not found:
            return False
        self.check_writable()
        for path in found:
            try:
                path.unlink()
            except OSError as exc:
                raise StepError(f"error removing {path}: {exc.strerror}") from None
        self._refresh()
        return True

    def _refresh(self) -> None:
        if self.root_dir is None:
            # --fresh: otherwise the links of a removed certificate are left dangling
            _run(["update-ca-certificates", "--fresh"], what="running update-ca-certificates")
            return
        self.bundle.parent.mkdir(parents=True, exist_ok=True)
        tool = shutil.which("update-ca-certificates")
        if tool:
            conf = self.root_dir / "etc" / "ca-certificates.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.touch()
            share = self.root_dir / "usr" / "share" / "ca-certificates"
            share.mkdir(parents=True, exist_ok=True)
            _run([tool, "--fresh", "--certsconf", str(conf), "--certsdir", str(share),
                  "--localcertsdir", str(self.local), "--etccertsdir", str(self.bundle.parent),
                  "--hooksdir", str(self.root_dir / "etc" / "ca-certificates" / "update.d")],
                 what="running update-ca-certificates")
        # the Debian tool leaves the old bundle behind when no certificate remains, and may be
        # missing: (re)build the bundle from the store
        data = b"".join(p.read_bytes().rstrip(b"\n") + b"\n"
                        for p in sorted(self.local.glob("*.crt")))
        write_private(self.bundle, data, mode=0o644)


# -- NSS (Chromium, Firefox) -------------------------------------------------------------------

def nss_stores(home: Path) -> list[NSSStore]:
    """The NSS databases present for the user whose home is ``home``: the shared one Chromium
    and other NSS programs read, and every Firefox profile (deb and snap installs)."""
    candidates = [home / ".pki" / "nssdb"]
    for base in (home / ".mozilla" / "firefox",
                 home / "snap" / "firefox" / "common" / ".mozilla" / "firefox"):
        candidates.extend(sorted(base.glob("*")) if base.is_dir() else [])
    return [NSSStore(path) for path in candidates if (path / "cert9.db").is_file()]


class NSSStore:
    """An NSS SQL database, changed with ``certutil`` (Debian: libnss3-tools)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db = f"sql:{directory}"

    @property
    def label(self) -> str:
        return f"the NSS database {self.directory}"

    @staticmethod
    def tool() -> str:
        found = shutil.which("certutil")
        if not found:
            raise StepError("NSS databases need certutil: apt-get install libnss3-tools")
        return found

    def check_writable(self) -> None:
        # SQLite writes a journal next to the database files
        if not all(os.access(path, os.W_OK) for path in (self.directory,
                                                          self.directory / "cert9.db")):
            raise StepError(f"{self.label} is not writable: run the command as the user who "
                            "owns it")

    def _entries_of(self, cert: x509.Certificate) -> dict[str, str]:
        """Nickname -> trust flags (``SSL,S/MIME,JAR``) of every entry holding ``cert``."""
        listing = _run([self.tool(), "-L", "-d", self.db], what=f"reading {self.label}")
        der, found = _der(cert), {}
        # "nickname    trust,flags,here" after a two-line header
        for line in listing.splitlines()[3:]:
            match = re.fullmatch(r"(.+?)\s+(\w*,\w*,\w*)\s*", line)
            if not match or match[1] in found:
                continue
            pem = _run([self.tool(), "-L", "-d", self.db, "-n", match[1], "-a"],
                       what=f"reading {self.label}")
            if any(_der(c) == der for c in load_certificates(pem.encode())):
                found[match[1]] = match[2]
        return found

    def contains(self, cert: x509.Certificate) -> bool:
        return bool(self._entries_of(cert))

    def add(self, cert: x509.Certificate, name: str) -> None:
        entries = self._entries_of(cert)
        self.check_writable()
        if not entries:
            with _pem_file(cert) as pem_path:
                # C,, : a trusted CA for TLS servers
                _run([self.tool(), "-A", "-d", self.db, "-t", "C,,", "-n", name, "-i",
                      pem_path], what=f"adding to {self.label}")
            return
        for nickname, trust in entries.items():
            # present but maybe not trusted for TLS: add C, keep its other trust flags
            if "C" not in trust.split(",")[0]:
                _run([self.tool(), "-M", "-d", self.db, "-n", nickname, "-t", "C" + trust],
                     what=f"changing the trust of {nickname} in {self.label}")

    def remove(self, cert: x509.Certificate) -> bool:
        nicknames = list(self._entries_of(cert))
        if nicknames:
            self.check_writable()
        for nickname in nicknames:
            _run([self.tool(), "-D", "-d", self.db, "-n", nickname],
                 what=f"removing from {self.label}")
        return bool(nicknames)


# -- Java ------------------------------------------------------------------------------------------

def java_store(keystore: str | None = None) -> JavaStore:
    """The keystore file ``keystore``, else the ``cacerts`` of ``$JAVA_HOME``, else of the JDK
    whose ``keytool`` is on the PATH; keytool is taken from the same places."""
    tool = shutil.which("keytool")
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "keytool").exists():
        tool = str(Path(home) / "bin" / "keytool")
    if not tool:
        where = f"{home}/bin or the PATH" if home else "the PATH"
        raise StepError(f"the Java trust store needs keytool: none in {where} (install a JDK "
                        "or set JAVA_HOME)")
    if keystore:
        return JavaStore(Path(keystore), tool)
    java_home = Path(home) if home else Path(os.path.realpath(tool)).parent.parent
    return JavaStore(_jdk_cacerts(java_home), tool)


def _jdk_cacerts(java_home: Path) -> Path:
    # JDK 9+ keeps it in lib/, JDK 8 in jre/lib/
    modern = java_home / "lib" / "security" / "cacerts"
    legacy = java_home / "jre" / "lib" / "security" / "cacerts"
    return legacy if legacy.exists() and not modern.exists() else modern


class JavaStore:
    def __init__(self, keystore: Path, tool: str) -> None:
        self.keystore, self.tool = keystore, tool

    @property
    def label(self) -> str:
        return f"the Java trust store {self.keystore}"

    def check_writable(self) -> None:
        if not self.keystore.exists():
            raise StepError(f"{self.label} does not exist")
        # keytool rewrites the file in place; a JDK's cacerts usually belongs to root
        if not os.access(self.keystore, os.W_OK):
            raise StepError(f"{self.label} is not writable: run the command as root (e.g. "
                            "with sudo), or use --java-keystore FILE for a private keystore")

    def _keytool(self, *args: str, what: str) -> str:
        if not self.keystore.exists():
            raise StepError(f"{self.label} does not exist")
        return _run([self.tool, *args, "-keystore", str(self.keystore), "-storepass",
                     JAVA_STOREPASS, "-noprompt"], what=what)

    def _aliases_of(self, cert: x509.Certificate) -> list[str]:
        listing = self._keytool("-list", "-rfc", what=f"reading {self.label}")
        der, found = _der(cert), []
        for block in re.split(r"(?m)^Alias name: ", listing)[1:]:
            alias = block.splitlines()[0].strip()
            if any(_der(c) == der for c in load_certificates(block.encode())):
                found.append(alias)
        return found

    def contains(self, cert: x509.Certificate) -> bool:
        return bool(self._aliases_of(cert))

    def add(self, cert: x509.Certificate, name: str) -> None:
        if self.contains(cert):
            return
        self.check_writable()
        with _pem_file(cert) as pem_path:
            self._keytool("-importcert", "-alias", name, "-file", pem_path,
                          what=f"adding to {self.label}")

    def remove(self, cert: x509.Certificate) -> bool:
        aliases = self._aliases_of(cert)
        if aliases:
            self.check_writable()
        for alias in aliases:
            self._keytool("-delete", "-alias", alias, what=f"removing from {self.label}")
        return bool(aliases)
