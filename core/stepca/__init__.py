"""stepca: a plugin-based private certificate authority.

The public plugin API is this package (``hookimpl``, ``__version__``) and the modules
``stepca.provisioner``, ``stepca.keystore``, ``stepca.store``, ``stepca.errors`` and
``stepca.testing``. Everything else may change between releases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pluggy

__all__ = ["__version__", "hookimpl"]

__version__ = "0.1.0"

PROJECT = "stepca"

_F = TypeVar("_F", bound=Callable[..., object])

hookimpl: Callable[[_F], _F] = pluggy.HookimplMarker(PROJECT)  # type: ignore[assignment]
"""Marks a plugin's hook implementations: ``@stepca.hookimpl``."""
