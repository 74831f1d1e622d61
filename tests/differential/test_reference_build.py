"""scripts/reference-stepca without Debian's Go packages: one clear reason, and the exit code
the differential fixtures turn into a skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reference-stepca"


def test_without_go_the_build_names_the_packages_and_exits_3(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH holding only what the script needs before its check
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to("/usr/bin/dirname")
    built = subprocess.run(["/bin/bash", str(SCRIPT)], env={**os.environ, "PATH": str(bin_dir)},
                           capture_output=True, text=True, timeout=60, check=False)
    assert (built.returncode, built.stdout) == (3, "")
    assert built.stderr == ("reference step-ca unavailable: needs the Debian packages golang-go "
                            "golang-github-smallstep-certificates-dev (./scripts/install "
                            "installs them when run as root)\n")
