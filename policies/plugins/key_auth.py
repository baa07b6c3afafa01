"""key-auth: PLACEHOLDER — being implemented in this session; refuses every config until then."""

from __future__ import annotations

from typing import Any

from policies.base import CompileEnv, ConfigError, Handler, Policy


class KeyAuthPolicy(Policy):
    name = "key-auth"
    title = "Key authentication"
    priority = 1250
    schema: Any = {"type": "object"}

    @classmethod
    def parse(cls, config: Any) -> Any:
        raise ConfigError("", "the key-auth policy is not available yet")

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        raise NotImplementedError
