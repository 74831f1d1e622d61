"""Make the plugin importable when it is tested from a stepca checkout without being installed
(``pip install -e .`` puts the same folder on ``sys.path``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.append(ROOT)  # appended: an installed copy, if any, wins
