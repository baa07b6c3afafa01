"""What a policy type is, and what its compiled handler does at request time.

A policy type (one module under ``policies/plugins/``) declares:

* ``name`` — what attachments refer to (``"key-auth"``);
* ``priority`` — execution order, higher first (bands as in Kong: 2000+
  pre-authentication checks, 1000–1999 authentication, 900–999 authorization
  and limits, 800–899 transformations, 100–799 validation);
* ``schema`` — a JSON Schema for the attachment's ``config``, checked when an
  operator saves it (admin, commands, REST API) and again when the gateway
  compiles it;
* ``parse(config)`` — semantic checks the schema cannot express (a CIDR that
  must parse, a regex that must compile), raising :class:`ConfigError` with the
  field's path; returns the immutable object the handler is built from;
* ``compile(parsed, env)`` — builds a :class:`Handler` once per snapshot.

A handler's ``request`` hook returns ``None`` to continue or a :class:`Denial`
(the gateway answers with the uniform error envelope); its ``response`` hook
may edit the response head. Handlers never touch the ORM; anything they need
at request time comes from the snapshot or from the runtime services in
:class:`CompileEnv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from policies.context import RequestContext, ResponseHead


class ConfigError(ValueError):
    """A config value a policy cannot use. ``path`` names the field (``allow[2]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Denial:
    """The gateway answers instead of the upstream.

    ``code`` and ``message`` go into the error envelope; ``reason`` is the
    ``deny_reason`` recorded for analytics and may be more precise than what
    the client is told (an expired key is recorded as ``key_expired`` but
    answered exactly like an unknown one, so a client cannot probe which keys
    exist).
    """

    status: int
    code: str
    message: str
    reason: str = ""
    details: Mapping[str, Any] | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def deny_reason(self) -> str:
        return self.reason or self.code


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """What a compiled handler may know about the API it guards."""

    api_id: str
    tenant_id: str
    name: str = ""
    base_path: str = "/"
    openapi: Mapping[str, Any] | None = None
    route_patterns: tuple[tuple[str, frozenset[str]], ...] = ()


@dataclass(frozen=True, slots=True)
class CompileEnv:
    """Runtime services a handler may hold on to (shared by every snapshot of a worker).

    ``services`` maps a service name (``"keys"``, ``"limiter"``, ``"jwks"``) to
    the object the gateway runtime created for it; a handler looks up what it
    needs at compile time and fails the build with a clear message when the
    runtime lacks it.
    """

    api: ApiInfo
    services: Mapping[str, Any] = field(default_factory=dict)
    attachment_id: str = ""
    scope: str = "api"  # tenant, api, consumer or api+consumer

    def service(self, name: str) -> Any:
        try:
            return self.services[name]
        except KeyError:
            raise RuntimeError(f"the gateway runtime provides no {name!r} service") from None


class Handler:
    """A compiled policy: immutable after construction, shared by concurrent requests.

    Subclasses override the hooks they use; ``has_request`` / ``has_response``
    are derived so the chain skips the ones a handler does not implement.
    """

    name: str = ""
    priority: int = 0

    async def request(self, ctx: RequestContext) -> Denial | None:
        return None

    def response(self, ctx: RequestContext, head: ResponseHead) -> None:
        return None

    @property
    def has_request(self) -> bool:
        return type(self).request is not Handler.request

    @property
    def has_response(self) -> bool:
        return type(self).response is not Handler.response


class Policy:
    """A policy type. Subclasses set the class attributes and implement ``compile``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    priority: ClassVar[int] = 0
    schema: ClassVar[Mapping[str, Any]] = {}
    # Scopes an attachment of this type may use. Types that run before
    # authentication cannot be consumer-scoped: the consumer is not known yet.
    scopes: ClassVar[frozenset[str]] = frozenset({"tenant", "api", "consumer", "api+consumer"})
    # What happens when the policy's backing store is unreachable, in words (shown in docs/admin).
    on_store_failure: ClassVar[str] = "not applicable: no backing store"

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> Any:
        """Semantic validation after the schema passed; returns what ``compile`` receives."""
        return config

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        raise NotImplementedError


PRE_AUTH_SCOPES = frozenset({"tenant", "api"})
