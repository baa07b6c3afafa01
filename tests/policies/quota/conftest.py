"""The limit tests' fixtures (unique Redis prefixes, the stub authenticator)."""

from tests.policies.rate_limit.conftest import prefix, stub_auth  # noqa: F401
