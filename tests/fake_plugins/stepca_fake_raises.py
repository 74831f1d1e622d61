"""A plugin that fails at import time with its own error."""

from __future__ import annotations

raise RuntimeError("the vault address is not configured")
