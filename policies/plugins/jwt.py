"""jwt: PLACEHOLDER — being implemented in this session; refuses every config until then."""

from __future__ import annotations

from typing import Any

from policies.base import CompileEnv, ConfigError, Handler, Policy


class JwtPolicy(Policy):
    name = "jwt"
    title = "JWT authentication"
    priority = 1450
    schema: Any = {"type": "object"}

    @classmethod
    def parse(cls, config: Any) -> Any:
        raise ConfigError("", "the jwt policy is not available yet")

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        raise NotImplementedError
