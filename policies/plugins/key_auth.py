"""key-auth: authenticate a request by an API key and tie it to the routed API's subscription.

The key comes from a header (default ``X-API-Key``; several may be listed and
the first present wins) or, if configured, a query parameter. Checks, in
order, each answered without a database round trip when it can be:

1. no key → 401 ``key_missing``; two different keys in the location that
   holds one (two ``X-API-Key`` lines...) → 401 ``key_invalid`` with deny
   reason ``key_ambiguous``;
2. this client has presented too many bad keys lately → 429
   ``too_many_auth_failures`` with ``Retry-After``, before any lookup (the
   brake on guessing);
3. the key's format and CRC checksum (``consumers.keys.parse``) — a mangled or
   made-up key never reaches the store;
4. the key by public id from the worker's key store (cached hits and misses,
   see ``policies.keystore``), then the keyed hash compared in constant time;
5. unknown, wrong secret, another tenant's, revoked, expired (a rotated-out
   key is one whose grace ended) or its consumer suspended → 401
   ``key_invalid``, one identical answer so a client cannot probe which keys
   exist or what state they are in; the precise reason (``key_revoked``,
   ``key_expired``, ``consumer_suspended``…) goes to ``deny_reason``. A
   suspended consumer is answered like an unknown key, as the jwt policy
   does: a suspended partner learns nothing it could not learn from a typo;
6. a key restricted to other APIs → 403 ``key_not_allowed``; no active
   subscription of its application to this API → 403 ``not_subscribed``
   (unless ``require_subscription`` is off).

On success the request carries ``ctx.identity`` (with the subscription, which
the limit policies use) and, towards the upstream, ``X-Consumer-ID``,
``X-Consumer-Username``, ``X-Application-ID`` and ``X-Credential-Identifier``
(the key's display prefix); the gateway drops client-sent copies of those
headers. The key itself is removed from what is forwarded unless
``hide_credentials`` is off. The plaintext key is never logged or stored.

Accepted keys are remembered per handler (one API, one snapshot) by a BLAKE2b
fingerprint of the presented bytes, with the identity and headers they
produce: later requests with the same key skip parsing, the lookup and the
HMAC, and only the expiry is checked again (it is the one thing that changes
with time alone). Any change to a key, its consumer or a subscription bumps
the tenant's version and rebuilds the snapshot, so this memory never outlives
the state it was verified against. Rejected keys are never remembered, and no
plaintext key is kept: only the fingerprint.

Authentication fails closed: a lookup that cannot reach the database is a 503
``auth_unavailable``; keys already in the cache keep working.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from consumers import keys
from policies.base import PRE_AUTH_SCOPES, CompileEnv, ConfigError, Denial, Handler, Policy
from policies.context import Identity, RequestContext, Subscription
from policies.keystore import KeyRecord, KeyStore, KeyStoreUnavailable

_HEADER_NAME = {
    "type": "string",
    "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$",
    "description": "An HTTP header name (case does not matter), e.g. X-API-Key.",
}
# Headers the gateway owns: a key cannot be read from them, they would never arrive or would leak.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-request-id",
        "x-forwarded-for",
        "x-consumer-id",
        "x-consumer-username",
        "x-application-id",
        "x-credential-identifier",
    }
)


MAX_GRANTS = 10_000  # accepted keys remembered per handler (per API and snapshot)
AMBIGUOUS = b"\x00ambiguous"  # _candidate's answer for two different keys in one location (never a key)


@dataclass(frozen=True, slots=True)
class _Grant:
    """A key this handler accepted: what every later request with it gets, without re-verifying."""

    record: KeyRecord
    identity: Identity  # shared by the key's requests: nothing edits an identity once set
    upstream_headers: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class KeyAuthConfig:
    headers: tuple[str, ...]  # as configured (display case), checked in order
    query_param: str | None
    hide_credentials: bool
    require_subscription: bool
    forward_identity: bool
    failure_limit: int  # 0: no throttle
    failure_window_seconds: int


class KeyAuthHandler(Handler):
    """Compiled once per snapshot; holds the worker's key store and precomputed answers."""

    def __init__(self, config: KeyAuthConfig, store: KeyStore, *, api_id: str, tenant_id: str, version: int) -> None:
        self._store = store
        self._throttle = store.throttle
        self._api_id = api_id
        self._tenant_id = tenant_id
        self._version = version
        self._header_names = tuple(name.lower().encode("ascii") for name in config.headers)
        self._header_set = frozenset(self._header_names)
        self._query_name = config.query_param.encode() if config.query_param else None
        self._hide = config.hide_credentials
        self._require_subscription = config.require_subscription
        self._forward = config.forward_identity
        self._limit = config.failure_limit
        self._window = config.failure_window_seconds
        # BLAKE2b fingerprint of a presented key -> its grant. Lives as long as this handler,
        # i.e. one snapshot: any change to a key, its consumer or a subscription bumps the
        # tenant's version, the snapshot is rebuilt and this is forgotten.
        self._grants: dict[bytes, _Grant] = {}
        challenge = f'ApiKey header="{config.headers[0]}"' if config.headers else "ApiKey"
        if config.query_param:
            challenge += f', query="{config.query_param}"'
        self._challenge = ((b"www-authenticate", challenge.encode("ascii")),)
        self._missing = Denial(
            status=401,
            code="key_missing",
            message="An API key is required.",
            reason="key_missing",
            headers=self._challenge,
        )
        # One body for every way a presented key can be bad; only the recorded reason differs.
        self._invalid = {
            reason: Denial(
                status=401,
                code="key_invalid",
                message="The API key is not valid.",
                reason=reason,
                headers=self._challenge,
            )
            for reason in ("key_invalid", "key_expired", "key_revoked", "consumer_suspended", "key_ambiguous")
        }
        self._not_allowed = Denial(
            status=403, code="key_not_allowed", message="This API key may not call this API.", reason="key_not_allowed"
        )
        self._not_subscribed = Denial(
            status=403,
            code="not_subscribed",
            message="The application has no active subscription to this API.",
            reason="not_subscribed",
        )
        self._unavailable = Denial(
            status=503,
            code="auth_unavailable",
            message="Authentication is temporarily unavailable; try again later.",
            reason="auth_unavailable",
            headers=((b"retry-after", b"1"),),
        )

    def _candidate(self, ctx: RequestContext) -> bytes | None:
        """The presented key's bytes (surrounding whitespace removed), or None when none is presented.

        ``AMBIGUOUS`` when the first location that holds a key holds two different ones (two
        ``X-API-Key`` lines, or two ``apikey=`` parameters): which one a component in front
        of the gateway looked at is anyone's guess, so neither is used.
        """
        for name in self._header_names:
            found: bytes | None = None
            for key, value in ctx.headers:
                if key == name:
                    value = value.strip()
                    if found is None:
                        found = value
                    elif value != found:
                        return AMBIGUOUS
            if found is not None:
                return found
        if self._query_name is not None and ctx.query:
            found = None
            for part in ctx.query.split(b"&"):
                name, _, value = part.partition(b"=")
                if unquote_to_bytes(name) == self._query_name:
                    value = unquote_to_bytes(value).strip()
                    if found is None:
                        found = value
                    elif value != found:
                        return AMBIGUOUS
            return found
        return None

    def _hide_credentials(self, ctx: RequestContext) -> None:
        """Drop every configured credential location, so no copy of the key reaches the upstream."""
        # Headers: the proxy leaves these names out in its one pass over the list (no copy here).
        ctx.drop_headers = ctx.drop_headers | self._header_set if ctx.drop_headers else self._header_set
        if self._query_name is not None and ctx.query:
            parts = ctx.query.split(b"&")
            # Other parameters keep their exact bytes (encoding, order, empty ones).
            kept = [part for part in parts if unquote_to_bytes(part.partition(b"=")[0]) != self._query_name]
            if len(kept) != len(parts):
                ctx.query = b"&".join(kept)

    def _fail(self, ctx: RequestContext, reason: str) -> Denial:
        if self._limit:
            self._throttle.failed(self._tenant_id, ctx.client_ip, self._window)
        return self._invalid[reason]

    async def request(self, ctx: RequestContext) -> Denial | None:
        candidate = self._candidate(ctx)
        if not candidate:
            return self._missing
        if candidate is AMBIGUOUS:
            return self._fail(ctx, "key_ambiguous")
        if self._limit:
            wait = self._throttle.retry_after(self._tenant_id, ctx.client_ip, self._limit, self._window)
            if wait:
                return Denial(
                    status=429,
                    code="too_many_auth_failures",
                    message="Too many requests with an invalid API key; try again later.",
                    reason="auth_throttled",
                    details={"retry_after_seconds": wait},
                    headers=((b"retry-after", str(wait).encode()),),
                )
        fingerprint = hashlib.blake2b(candidate, digest_size=16).digest()
        grant = self._grants.get(fingerprint)
        if grant is None:
            denial_or_grant = await self._verify(ctx, candidate, fingerprint)
            if isinstance(denial_or_grant, Denial):
                return denial_or_grant
            grant = denial_or_grant
        else:
            expires_at = grant.record.expires_at
            if expires_at is not None and expires_at <= time.time():
                del self._grants[fingerprint]
                return self._fail(ctx, "key_expired")
        ctx.identity = grant.identity
        if self._hide:
            self._hide_credentials(ctx)
        if grant.upstream_headers:
            ctx.upstream_headers.extend(grant.upstream_headers)
        self._store.mark_used(grant.record.key_id)
        return None

    async def _verify(self, ctx: RequestContext, candidate_bytes: bytes, fingerprint: bytes) -> Denial | _Grant:
        """The full check of a key this handler has not accepted yet; a grant (remembered) when it passes."""
        candidate = candidate_bytes.decode("latin-1")
        parsed = keys.parse(candidate)
        if parsed is None:
            return self._fail(ctx, "key_invalid")
        try:
            record = await self._store.lookup(parsed.key_id, self._version)
        except KeyStoreUnavailable:
            return self._unavailable
        if record is None or record.tenant_id != self._tenant_id:
            return self._fail(ctx, "key_invalid")
        if not keys.matches(candidate, stored_digest=record.digest, pepper_id=record.pepper_id):
            return self._fail(ctx, "key_invalid")
        # Only a holder of the real key learns (in deny_reason, not in the answer) what state it is in.
        if not record.active:
            return self._fail(ctx, "key_revoked")
        if record.expires_at is not None and record.expires_at <= time.time():
            return self._fail(ctx, "key_expired")
        if not record.consumer_active:
            return self._fail(ctx, "consumer_suspended")
        if record.allowed_api_ids and self._api_id not in record.allowed_api_ids:
            return self._not_allowed
        subscribed = record.subscriptions.get(self._api_id)
        if subscribed is None and self._require_subscription:
            return self._not_subscribed
        grant = self._grant(record, subscribed)
        if len(self._grants) >= MAX_GRANTS:
            self._grants.clear()  # rare (that many distinct keys on one API within one snapshot): start over
        self._grants[fingerprint] = grant
        return grant

    def _grant(self, record: KeyRecord, subscribed: tuple[str, str] | None) -> _Grant:
        prefix = keys.display_prefix(record.key_id)
        identity = Identity(
            consumer_id=record.consumer_id,
            consumer_name=record.consumer_name,
            credential="key",
            application_id=record.application_id,
            key_prefix=prefix,
            scopes=record.scopes,
            groups=record.groups,
            subscription=Subscription(*subscribed) if subscribed is not None else None,
        )
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if self._forward:
            headers = (
                (b"x-consumer-id", record.consumer_id.encode()),
                (b"x-consumer-username", record.consumer_name.encode()),
                (b"x-application-id", record.application_id.encode()),
                (b"x-credential-identifier", prefix.encode()),
            )
        return _Grant(record=record, identity=identity, upstream_headers=headers)


class KeyAuthPolicy(Policy):
    name = "key-auth"
    title = "Key authentication"
    priority = 1250
    scopes = PRE_AUTH_SCOPES
    on_store_failure = (
        "fails closed: keys already cached keep working; a key that must be looked up gets 503 auth_unavailable"
    )
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "headers": {
                "type": "array",
                "items": _HEADER_NAME,
                "minItems": 1,
                "maxItems": 5,
                "uniqueItems": True,
                "description": 'Request headers that may carry the key, checked in order. Default: ["X-API-Key"].',
            },
            "query_param": {
                "type": ["string", "null"],
                "pattern": "^[A-Za-z0-9._~-]{1,64}$",
                "description": "A query parameter that may carry the key (checked after the headers). Default: none.",
            },
            "hide_credentials": {
                "type": "boolean",
                "description": "Remove the key from the headers and query forwarded upstream. Default: true.",
            },
            "require_subscription": {
                "type": "boolean",
                "description": "Refuse keys whose application has no active subscription to the API. Default: true.",
            },
            "forward_identity": {
                "type": "boolean",
                "description": (
                    "Send X-Consumer-ID, X-Consumer-Username, X-Application-ID and X-Credential-Identifier "
                    "upstream. Default: true."
                ),
            },
            "failure_limit": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10_000,
                "description": (
                    "Bad keys one client address may present per window before it gets 429 without a lookup "
                    "(per gateway worker). 0 turns the brake off. Default: 10."
                ),
            },
            "failure_window_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": 86_400,
                "description": "The window for failure_limit, in seconds. Default: 60.",
            },
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> KeyAuthConfig:
        headers = tuple(config.get("headers") or ("X-API-Key",))
        lowered = [name.lower() for name in headers]
        for index, name in enumerate(lowered):
            if name in _RESERVED_HEADERS:
                raise ConfigError(
                    f"headers[{index}]", f"{headers[index]!r} is set by the gateway and cannot carry a key"
                )
            if name in lowered[:index]:
                raise ConfigError(f"headers[{index}]", f"{headers[index]!r} is listed twice (names ignore case)")
        return KeyAuthConfig(
            headers=headers,
            query_param=config.get("query_param") or None,
            hide_credentials=config.get("hide_credentials", True),
            require_subscription=config.get("require_subscription", True),
            forward_identity=config.get("forward_identity", True),
            failure_limit=config.get("failure_limit", 10),
            failure_window_seconds=config.get("failure_window_seconds", 60),
        )

    @classmethod
    def compile(cls, parsed: KeyAuthConfig, env: CompileEnv) -> KeyAuthHandler:
        store = env.service("keys")
        versions = env.services.get("tenant_versions") or {}
        return KeyAuthHandler(
            parsed,
            store,
            api_id=env.api.api_id,
            tenant_id=env.api.tenant_id,
            version=int(versions.get(env.api.tenant_id, 0)),
        )
