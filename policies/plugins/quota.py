"""quota: PLACEHOLDER — being implemented in this session; refuses every config until then."""

from __future__ import annotations

from typing import Any

from policies.base import CompileEnv, ConfigError, Handler, Policy


class QuotaPolicy(Policy):
    name = "quota"
    title = "Quota"
    priority = 900
    schema: Any = {"type": "object"}

    @classmethod
    def parse(cls, config: Any) -> Any:
        raise ConfigError("", "the quota policy is not available yet")

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        raise NotImplementedError
