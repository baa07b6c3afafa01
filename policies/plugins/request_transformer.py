"""request-transformer: PLACEHOLDER — being implemented in this session; refuses every config until then."""

from __future__ import annotations

from typing import Any

from policies.base import CompileEnv, ConfigError, Handler, Policy


class RequestTransformerPolicy(Policy):
    name = "request-transformer"
    title = "Request transformer"
    priority = 810
    schema: Any = {"type": "object"}

    @classmethod
    def parse(cls, config: Any) -> Any:
        raise ConfigError("", "the request-transformer policy is not available yet")

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        raise NotImplementedError
