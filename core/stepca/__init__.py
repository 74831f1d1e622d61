"""stepca: a plugin-based private certificate authority.

The public plugin API is this package (``hookimpl``, ``__version__``) and the modules
``stepca.provisioner``, ``stepca.keystore``, ``stepca.store``, ``stepca.errors`` and
``stepca.testing``. Everything else may change between releases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["__version__", "hookimpl"]

__version__ = "0.1.0"

PROJECT = "stepca"

_F = TypeVar("_F", bound=Callable[..., object])

if TYPE_CHECKING:
    hookimpl: Callable[[_F], _F]
    """Marks a plugin's hook implementations: ``@stepca.hookimpl``."""


def __getattr__(name: str) -> Any:
    # pluggy is imported with the first plugin, not with this package: `step version` and
    # `step certificate inspect` read it and load no plugin (decision 0043)
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker(PROJECT)
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
