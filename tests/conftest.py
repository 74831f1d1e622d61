"""Shared fixtures: see also stepca.testing (loaded as a pytest plugin)."""
