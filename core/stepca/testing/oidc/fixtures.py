"""Module-scoped pytest fixtures for the OpenID Connect tests: one provider and one browser per
test module. A conftest.py offers them to its folder's tests by importing them::

    from stepca.testing.oidc.fixtures import browser, provider  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepca.testing.oidc import Browser, OpenIDProvider

__all__ = ["browser", "provider"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenIDProvider]:
    with OpenIDProvider() as running:
        yield running
