"""One OpenID provider and one browser per test module that asks for them."""

from stepca.testing.oidc.fixtures import browser, provider  # noqa: F401
