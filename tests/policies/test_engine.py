"""Chain resolution and execution: which attachment applies, in which order, and what a broken one does."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from policies import registry
from policies.base import ApiInfo, CompileEnv, ConfigError, Denial, Handler, Policy
from policies.context import Identity, RequestContext
from policies.engine import AttachmentSpec, compile_chains


class TagHandler(Handler):
    def __init__(self, tag: str, deny: bool, crash: bool = False) -> None:
        self.tag = tag
        self.deny = deny
        self.crash = crash

    async def request(self, ctx: RequestContext) -> Denial | None:
        ctx.response_headers.append((b"x-tag", self.tag.encode()))
        if self.crash:
            raise RuntimeError("a handler bug")
        if self.deny:
            return Denial(status=403, code="tag_denied", message="denied by tag")
        return None


class _TagPolicy(Policy):
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tag": {"type": "string"},
            "deny": {"type": "boolean"},
            "explode": {"type": "boolean"},
            "crash": {"type": "boolean"},
        },
        "required": ["tag"],
    }

    @classmethod
    def parse(cls, config: Any) -> Any:
        if config["tag"] == "bad":
            raise ConfigError("tag", "'bad' is not allowed")
        return config

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        if parsed.get("explode"):
            raise RuntimeError("cannot compile")
        return TagHandler(f"{cls.name}:{parsed['tag']}", parsed.get("deny", False), parsed.get("crash", False))


class PreAuthTag(_TagPolicy):
    name = "test-pre"
    priority = 2500
    scopes = frozenset({"tenant", "api"})


class AuthTag(_TagPolicy):
    """Stands in for an authentication policy: identifies the consumer named by the X-Who header."""

    name = "test-auth"
    priority = 1300

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        class Auth(TagHandler):
            async def request(self, ctx: RequestContext) -> Denial | None:
                who = ctx.header(b"x-who")
                if who:
                    ctx.identity = Identity(consumer_id=who.decode(), consumer_name=who.decode(), credential="test")
                return await super().request(ctx)

        return Auth(f"{cls.name}:{parsed['tag']}", False)


class PostAuthTag(_TagPolicy):
    name = "test-post"
    priority = 920


class LatePostTag(_TagPolicy):
    name = "test-late"
    priority = 850


@pytest.fixture(autouse=True)
def _test_policies(settings):
    here = __name__
    settings.APIM_POLICIES = [f"{here}.{n}" for n in ("PreAuthTag", "AuthTag", "PostAuthTag", "LatePostTag")]
    registry.policy_types.cache_clear()
    yield
    registry.policy_types.cache_clear()


API = ApiInfo(api_id="api1", tenant_id="t1")
OTHER_API = ApiInfo(api_id="api2", tenant_id="t1")


def spec(n: int, policy: str, tag: str, **fields: Any) -> AttachmentSpec:
    config = {"tag": tag, **{k: fields.pop(k) for k in ("deny", "explode", "crash") if k in fields}}
    return AttachmentSpec(id=f"p{n}", policy=policy, tenant_id=fields.pop("tenant_id", "t1"), config=config, **fields)


def run(chain, who: str | None = None) -> tuple[Any, list[str]]:
    headers = [(b"x-who", who.encode())] if who else []
    ctx = RequestContext(
        scope={"headers": headers},
        receive=None,  # type: ignore[arg-type]
        method="GET",
        path="/x",
        query=b"",
        headers=headers,
        host=b"h",
        client_ip="127.0.0.1",
        request_id=b"rid",
        tenant_id="t1",
        api_id=chain.api.api_id,
        route_pattern="/x",
        content_length=None,
        has_body=False,
    )
    result = asyncio.run(chain.on_request(ctx))
    return result, [v.decode() for n, v in ctx.response_headers if n == b"x-tag"]


def test_api_without_attachments_has_no_chain():
    chains = compile_chains([API, OTHER_API], [spec(1, "test-post", "a", api_id="api2")])
    assert chains["api1"] is None
    assert chains["api2"] is not None


def test_other_tenants_attachments_never_apply():
    chains = compile_chains([API], [spec(1, "test-post", "x", tenant_id="t2")])
    assert chains["api1"] is None


def test_most_specific_attachment_of_a_type_wins_and_order_follows_priority():
    chains = compile_chains(
        [API, OTHER_API],
        [
            spec(1, "test-post", "tenant"),
            spec(2, "test-post", "api", api_id="api1"),
            spec(3, "test-pre", "tenant"),
            spec(4, "test-auth", "tenant"),
            spec(5, "test-late", "tenant"),
        ],
    )
    _, tags = run(chains["api1"])
    assert tags == ["test-pre:tenant", "test-auth:tenant", "test-post:api", "test-late:tenant"]
    _, tags = run(chains["api2"])
    assert tags == ["test-pre:tenant", "test-auth:tenant", "test-post:tenant", "test-late:tenant"]


def test_priority_override_reorders():
    chains = compile_chains([API], [spec(1, "test-post", "a"), spec(2, "test-late", "b", priority=990)])
    _, tags = run(chains["api1"])
    assert tags == ["test-late:b", "test-post:a"]


def test_a_disabled_attachment_switches_its_type_off_at_its_scope():
    chains = compile_chains(
        [API, OTHER_API],
        [spec(1, "test-post", "tenant"), spec(2, "test-post", "off", api_id="api1", enabled=False)],
    )
    assert run(chains["api1"])[1] == []
    assert run(chains["api2"])[1] == ["test-post:tenant"]


def test_consumer_attachments_apply_after_authentication_to_that_consumer_only():
    chains = compile_chains(
        [API, OTHER_API],
        [
            spec(1, "test-auth", "auth"),
            spec(2, "test-post", "tenant"),
            spec(3, "test-post", "alice", consumer_id="alice"),
            spec(4, "test-post", "alice-api1", consumer_id="alice", api_id="api1"),
            spec(5, "test-late", "bob", consumer_id="bob"),
        ],
    )
    assert run(chains["api1"], "alice")[1] == ["test-auth:auth", "test-post:alice-api1"]
    assert run(chains["api2"], "alice")[1] == ["test-auth:auth", "test-post:alice"]
    assert run(chains["api1"], "bob")[1] == ["test-auth:auth", "test-post:tenant", "test-late:bob"]
    assert run(chains["api1"], "carol")[1] == ["test-auth:auth", "test-post:tenant"]
    assert run(chains["api1"])[1] == ["test-auth:auth", "test-post:tenant"]


def test_a_denial_stops_the_chain():
    chains = compile_chains([API], [spec(1, "test-pre", "stop", deny=True), spec(2, "test-post", "never")])
    result, tags = run(chains["api1"])
    assert isinstance(result, Denial) and result.code == "tag_denied"
    assert tags == ["test-pre:stop"]


def test_an_attachment_that_cannot_compile_closes_its_api_only():
    chains = compile_chains(
        [API, OTHER_API],
        [spec(1, "test-post", "boom", api_id="api1", explode=True), spec(2, "test-post", "fine", api_id="api2")],
    )
    result, _ = run(chains["api1"])
    assert isinstance(result, Denial) and result.status == 503 and result.code == "policy_unavailable"
    assert run(chains["api2"]) == (None, ["test-post:fine"])


def test_a_consumer_attachment_that_cannot_compile_refuses_that_consumer_only():
    chains = compile_chains(
        [API],
        [spec(1, "test-auth", "auth"), spec(2, "test-post", "boom", consumer_id="mallory", explode=True)],
    )
    result, _ = run(chains["api1"], "mallory")
    assert isinstance(result, Denial) and result.code == "policy_unavailable"
    assert run(chains["api1"], "alice") == (None, ["test-auth:auth"])


def test_a_stored_config_the_schema_refuses_closes_the_api():
    chains = compile_chains([API], [spec(1, "test-post", "bad")])
    result, _ = run(chains["api1"])
    assert isinstance(result, Denial) and result.code == "policy_unavailable"


def test_a_handler_that_raises_refuses_the_request_instead_of_failing_it():
    chains = compile_chains([API], [spec(1, "test-post", "bug", crash=True), spec(2, "test-late", "never")])
    result, tags = run(chains["api1"])
    assert isinstance(result, Denial) and result.status == 503 and result.code == "policy_unavailable"
    assert tags == ["test-post:bug"]
