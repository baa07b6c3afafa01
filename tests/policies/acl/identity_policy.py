"""A test-only authentication policy: the identity comes from request headers the test writes.

Registered only through a settings override in these tests; it lets acl be
tested against any groups and scopes without a key store or token issuer.
"""

from __future__ import annotations

from typing import Any

from policies.base import PRE_AUTH_SCOPES, CompileEnv, Denial, Handler, Policy
from policies.context import Identity, RequestContext


def _set(value: bytes | None) -> frozenset[str]:
    return frozenset(value.decode().split()) if value else frozenset()


class HeaderIdentityHandler(Handler):
    async def request(self, ctx: RequestContext) -> Denial | None:
        consumer = ctx.header(b"x-test-consumer")
        if consumer is not None:
            ctx.identity = Identity(
                consumer_id=f"id-{consumer.decode()}",
                consumer_name=consumer.decode(),
                credential="test",
                groups=_set(ctx.header(b"x-test-groups")),
                scopes=_set(ctx.header(b"x-test-scopes")),
            )
        return None


class HeaderIdentityPolicy(Policy):
    name = "test-identity"
    priority = 1300
    scopes = PRE_AUTH_SCOPES
    schema: Any = {"type": "object", "additionalProperties": False}

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        return HeaderIdentityHandler()
