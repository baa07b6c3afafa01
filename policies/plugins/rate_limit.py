"""rate-limit: PLACEHOLDER — being implemented in this session; refuses every config until then."""

from __future__ import annotations

from typing import Any

from policies.base import CompileEnv, ConfigError, Handler, Policy


class RateLimitPolicy(Policy):
    name = "rate-limit"
    title = "Rate limit"
    priority = 910
    schema: Any = {"type": "object"}

    @classmethod
    def parse(cls, config: Any) -> Any:
        raise ConfigError("", "the rate-limit policy is not available yet")

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        raise NotImplementedError
