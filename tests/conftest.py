"""Shared fixtures: see also stepca.testing (loaded as a pytest plugin)."""

# one OpenID provider and one browser per test module that asks for them
from stepca.testing.oidc.fixtures import browser, provider  # noqa: E402, F401
