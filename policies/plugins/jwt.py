"""jwt: authenticate a request by a signed JSON Web Token and map it to a consumer.

Accepted: HS256 (shared secrets), RS256 and ES256 (public keys in the config,
or a JWKS URL fetched off the request path, see ``policies.jwks``). The
token comes from ``Authorization: Bearer <token>`` (or another header, or a
cookie). Checks, in order: an algorithm from the configured list (never
``none``, never what the token's header merely claims — each key is bound to
one algorithm when the config is parsed, so an RSA public key can never be
used as an HMAC secret: the classic algorithm-confusion attack), the
signature, ``exp`` (required unless ``require_exp`` is off), ``nbf``,
``iat``, ``iss`` and ``aud`` when configured (with ``leeway_seconds`` for
clock skew), an optional maximum lifetime, then the consumer: the value of
``consumer_claim`` (default ``sub``) names a consumer of the API's tenant.

Every failure after "there is a token" is answered with one identical 401
(``token_invalid``, ``WWW-Authenticate: Bearer error="invalid_token"``, RFC
6750) so a client cannot probe which check failed; the precise reason
(``token_expired``, ``token_signature``, ``consumer_unknown``,
``consumer_suspended``…) goes to ``deny_reason`` for analytics. A suspended
consumer is answered like an unknown one (401, not 403), as suspended keys
are: a suspended partner learns nothing it could not learn from a typo.
Tokens are never logged.

Authentication fails closed: a JWKS not fetched yet means no keys (401), a
consumer lookup that cannot reach the database is a 503.

HS256 secrets are ``writeOnly`` in the schema: the REST API, the admin and the
audit log show them as ``[redacted]`` (``policies.secrets``); public keys are
shown. A secrets store (Vault references) is future work.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings

from apim.target_addresses import private_targets_allowed, url_literal_refusal
from policies.base import PRE_AUTH_SCOPES, CompileEnv, ConfigError, Denial, Handler, Policy
from policies.consumer_directory import ConsumerDirectory, DirectoryUnavailable
from policies.context import Identity, RequestContext
from policies.jwks import MIN_RSA_BITS, JwksCache, VerifyKey

ALGORITHMS = ("HS256", "RS256", "ES256")
MIN_SECRET_BYTES = 32
MAX_TOKEN_BYTES = 16 * 1024  # larger is not a token we issue; refuse before parsing
MAX_CANDIDATE_KEYS = 8  # signature checks per token, whatever the config holds
MAX_VERIFIED_TOKENS = 10_000  # verified tokens remembered per handler (per API and snapshot)
VERIFIED_TOKEN_TTL = 300.0  # a remembered token without exp is verified again after this many seconds
_IDENTITY_HEADERS = (b"x-consumer-id", b"x-consumer-username", b"x-credential-identifier")

_NAMES = {"type": "string", "minLength": 1, "maxLength": 500}
_ONE_OR_MANY = {
    "oneOf": [_NAMES, {"type": "array", "items": _NAMES, "minItems": 1, "maxItems": 20, "uniqueItems": True}],
}


@dataclass(frozen=True, slots=True)
class JwtConfig:
    algorithms: frozenset[str]
    keys: tuple[VerifyKey, ...]
    jwks_url: str | None
    issuers: tuple[str, ...] | None
    audiences: tuple[str, ...] | None
    leeway: int
    consumer_claim: str
    scope_claim: str
    header: str
    cookie: str | None
    require_exp: bool
    max_lifetime: int | None
    hide_credentials: bool


def _challenge(error: str | None) -> tuple[tuple[bytes, bytes], ...]:
    value = b'Bearer realm="apim"' + (f', error="{error}"'.encode() if error else b"")
    return ((b"www-authenticate", value),)


TOKEN_MISSING = Denial(
    status=401,
    code="token_missing",
    message="This API needs a bearer token (Authorization: Bearer <token>).",
    headers=_challenge(None),
)
_INVALID_HEADERS = _challenge("invalid_token")
AUTH_UNAVAILABLE = Denial(
    status=503,
    code="auth_unavailable",
    message="Authentication is temporarily unavailable; try again later.",
    reason="consumer_lookup_failed",
)


def _invalid(reason: str) -> Denial:
    return Denial(
        status=401,
        code="token_invalid",
        message="The bearer token is invalid or expired.",
        reason=reason,
        headers=_INVALID_HEADERS,
    )


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid"),
    (jwt.InvalidIssuerError, "token_issuer"),
    (jwt.InvalidAudienceError, "token_audience"),
    (jwt.MissingRequiredClaimError, "token_claim_missing"),
    (jwt.InvalidSignatureError, "token_signature"),
    (jwt.InvalidAlgorithmError, "token_algorithm"),
    (jwt.DecodeError, "token_malformed"),
)
# Prebuilt: the hot path picks one, it does not build a Denial per failure.
_DENIALS = {reason: _invalid(reason) for reason in {r for _, r in _REASONS}} | {
    r: _invalid(r)
    for r in (
        "token_invalid",
        "token_kid_unknown",
        "token_no_keys",
        "token_lifetime",
        "token_consumer_claim",
        "consumer_unknown",
        "consumer_suspended",
    )
}


def _reason(exc: Exception) -> str:
    for cls, reason in _REASONS:
        if isinstance(exc, cls):
            return reason
    return "token_invalid"


def _public_key(value: str, path: str, algorithms: frozenset[str]) -> tuple[str, Any]:
    try:
        key = load_pem_public_key(value.encode())
    except (ValueError, TypeError):
        raise ConfigError(path, "is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(path, f"an RSA key needs at least {MIN_RSA_BITS} bits (this one has {key.key_size})")
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(path, f"an EC key must be on P-256 for ES256 (this one is on {key.curve.name})")
        algorithm = "ES256"
    else:
        raise ConfigError(path, "only RSA (RS256) and EC P-256 (ES256) public keys are supported")
    if algorithm not in algorithms:
        raise ConfigError(path, f"this is an {algorithm} key but algorithms does not list {algorithm}")
    return algorithm, key


def _keys(config: Mapping[str, Any], algorithms: frozenset[str]) -> tuple[VerifyKey, ...]:
    keys = []
    kids: set[str] = set()
    for index, item in enumerate(config.get("keys", [])):
        path = f"keys[{index}]"
        kid = item.get("kid")
        if kid is not None:
            if kid in kids:
                raise ConfigError(f"{path}.kid", f"{kid!r} is used by two keys")
            kids.add(kid)
        if "secret" in item:
            secret = item["secret"].encode()
            if "HS256" not in algorithms:
                raise ConfigError(f"{path}.secret", "a secret is an HS256 key but algorithms does not list HS256")
            if b"-----BEGIN" in secret:
                raise ConfigError(f"{path}.secret", "looks like a PEM key; put public keys in public_key")
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"{path}.secret", f"an HS256 secret must be at least {MIN_SECRET_BYTES} bytes (256 bits)"
                )
            keys.append(VerifyKey(kid=kid, algorithm="HS256", key=secret))
        else:
            algorithm, key = _public_key(item["public_key"], f"{path}.public_key", algorithms)
            keys.append(VerifyKey(kid=kid, algorithm=algorithm, key=key))
    return tuple(keys)


def _jwks_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError("jwks_url", f"{value!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError("jwks_url", f"{value!r} is not an https:// URL")
    if parts.scheme == "http" and not getattr(settings, "APIM_ALLOW_PRIVATE_TARGETS", False):
        raise ConfigError("jwks_url", "must use https:// (http:// is allowed only with APIM_ALLOW_PRIVATE_TARGETS)")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ConfigError("jwks_url", "must not carry credentials or a fragment")
    if not private_targets_allowed():
        # No DNS here (this also runs when the gateway compiles); fetches check resolved addresses.
        reason = url_literal_refusal(value)
        if reason is not None:
            raise ConfigError("jwks_url", f"{reason} (allowed only with APIM_ALLOW_PRIVATE_TARGETS)")
    return value


def _one_or_many(value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature and time claims passed: its claims, the key that verified it, until when."""

    claims: dict[str, Any]
    key: VerifyKey
    valid_until: float  # time.time(): exp + leeway, or VERIFIED_TOKEN_TTL from the check when there is no exp


class JwtHandler(Handler):
    """Verifies the token with keys bound to their algorithm, then resolves the consumer (cached).

    A verified token is remembered (by a BLAKE2b fingerprint, not the token) with
    its claims until it expires: a signature check costs 25-90 µs, and a client
    sends the same token for its whole lifetime. A remembered token is used only
    while the key that verified it is still configured or still in the JWKS
    (a key removed from the set stops its tokens at once), and the memory
    lives as long as this handler, i.e. one snapshot. Refused tokens are never
    remembered.
    """

    def __init__(
        self,
        config: JwtConfig,
        *,
        tenant_id: str,
        version: int,
        directory: ConsumerDirectory,
        jwks: JwksCache | None,
    ) -> None:
        self._config = config
        self._tenant_id = tenant_id
        self._version = version
        self._directory = directory
        self._jwks = jwks
        self._header = config.header.lower().encode()
        self._bearer_only = self._header == b"authorization"
        self._cookie = config.cookie.encode() if config.cookie else None
        self._options: dict[str, Any] = {
            "require": ["exp"] if config.require_exp else [],
            "verify_aud": config.audiences is not None,
            "verify_iss": config.issuers is not None,
        }
        self._audience = list(config.audiences) if config.audiences is not None else None
        self._issuer = list(config.issuers) if config.issuers is not None else None
        self._verified: dict[bytes, _Verified] = {}

    def _token(self, ctx: RequestContext) -> str | None:
        value = ctx.header(self._header)
        if value is not None:
            scheme, _, rest = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and rest.strip():
                return rest.strip().decode("latin-1")
            if not self._bearer_only and value.strip():
                return value.strip().decode("latin-1")
        if self._cookie is not None:
            for name, raw in ctx.headers:
                if name != b"cookie":
                    continue
                for pair in raw.split(b";"):
                    key, eq, cookie = pair.strip().partition(b"=")
                    if eq and key == self._cookie and cookie:
                        return cookie.decode("latin-1")
        return None

    def _candidates(self, alg: str, kid: str | None) -> tuple[VerifyKey, ...] | None:
        keys = self._config.keys
        if self._config.jwks_url is not None and self._jwks is not None:
            keys = keys + self._jwks.keys(self._config.jwks_url)
        usable = [k for k in keys if k.algorithm == alg]
        if kid is not None:
            exact = [k for k in usable if k.kid == kid]
            usable = exact or [k for k in usable if k.kid is None]
            if not usable:
                return None
        return tuple(usable[:MAX_CANDIDATE_KEYS])

    def _trusted(self, key: VerifyKey) -> bool:
        """Whether ``key`` still verifies tokens here (configured, or in the JWKS as last fetched)."""
        if any(known is key for known in self._config.keys):
            return True
        if self._config.jwks_url is None or self._jwks is None:
            return False
        return any(known is key for known in self._jwks.keys(self._config.jwks_url))

    def _claims(self, token: str) -> dict[str, Any] | str:
        """The token's verified claims (remembered ones when still valid), or the deny reason."""
        fingerprint = hashlib.blake2b(token.encode("latin-1"), digest_size=16).digest()
        now = time.time()
        known = self._verified.get(fingerprint)
        if known is not None:
            if now < known.valid_until and self._trusted(known.key):
                return known.claims
            del self._verified[fingerprint]
        verified = self._verify(token)
        if isinstance(verified, str):
            return verified
        claims, key = verified
        exp = claims.get("exp")
        valid_until = exp + self._config.leeway if isinstance(exp, int | float) else now + VERIFIED_TOKEN_TTL
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()  # rare (that many live tokens on one API within one snapshot): start over
        self._verified[fingerprint] = _Verified(claims=claims, key=key, valid_until=valid_until)
        return claims

    def _verify(self, token: str) -> tuple[dict[str, Any], VerifyKey] | str:
        """The verified claims and the key that verified them, or the deny reason."""
        if len(token) > MAX_TOKEN_BYTES:
            return "token_malformed"
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return "token_malformed"
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or alg not in self._config.algorithms:
            return "token_algorithm"
        if kid is not None and not isinstance(kid, str):
            return "token_malformed"
        candidates = self._candidates(alg, kid)
        if candidates is None:
            if self._jwks is not None and self._config.jwks_url is not None:
                self._jwks.unknown_kid(self._config.jwks_url)
            return "token_kid_unknown"
        if not candidates:
            return "token_no_keys"
        reason = "token_signature"
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    options=self._options,  # type: ignore[arg-type]
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._config.leeway,
                )
                return claims, key
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidKeyError:
                continue
            except jwt.InvalidTokenError as exc:
                return _reason(exc)
        return reason

    async def request(self, ctx: RequestContext) -> Denial | None:
        token = self._token(ctx)
        if token is None:
            return TOKEN_MISSING
        claims = self._claims(token)
        if isinstance(claims, str):
            return _DENIALS.get(claims) or _DENIALS["token_invalid"]
        config = self._config
        if config.max_lifetime is not None:
            exp = claims.get("exp")
            if isinstance(exp, int | float) and exp - time.time() > config.max_lifetime + config.leeway:
                return _DENIALS["token_lifetime"]
        name = claims.get(config.consumer_claim)
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            return _DENIALS["token_consumer_claim"]
        try:
            consumer = await self._directory.get(self._tenant_id, name, self._version)
        except DirectoryUnavailable:
            return AUTH_UNAVAILABLE
        if consumer is None:
            return _DENIALS["consumer_unknown"]
        if not consumer.active:
            return _DENIALS["consumer_suspended"]
        raw_scopes = claims.get(config.scope_claim)
        if isinstance(raw_scopes, str):
            scopes = frozenset(raw_scopes.split())
        elif isinstance(raw_scopes, list):
            scopes = frozenset(s for s in raw_scopes if isinstance(s, str))
        else:
            scopes = frozenset()
        ctx.identity = Identity(
            consumer_id=consumer.consumer_id,
            consumer_name=consumer.name,
            credential="jwt",
            scopes=scopes,
            groups=consumer.groups,
        )
        self._rewrite_headers(ctx)
        ctx.upstream_headers.append((b"x-consumer-id", consumer.consumer_id.encode()))
        ctx.upstream_headers.append((b"x-consumer-username", consumer.name.encode()))
        return None

    def _rewrite_headers(self, ctx: RequestContext) -> None:
        """Drop identity headers the client forged (the upstream trusts ours) and, if asked, the credential."""
        hide = self._config.hide_credentials
        forged = any(name in _IDENTITY_HEADERS for name, _ in ctx.headers)
        if not forged and not hide:
            return
        headers = ctx.edit_headers()
        kept = []
        for name, value in headers:
            if name in _IDENTITY_HEADERS:
                continue
            if hide and name == self._header:
                continue
            if hide and self._cookie is not None and name == b"cookie":
                rest = [p for p in value.split(b";") if p.strip().partition(b"=")[0] != self._cookie]
                if rest:
                    kept.append((name, b";".join(rest).strip()))
                continue
            kept.append((name, value))
        headers[:] = kept


class JwtPolicy(Policy):
    name = "jwt"
    title = "JWT authentication"
    priority = 1450
    scopes = PRE_AUTH_SCOPES
    on_store_failure = (
        "fails closed: an unreachable JWKS leaves only the keys already fetched (none on a fresh worker: 401); "
        "an unreachable database for an uncached consumer answers 503"
    )
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["algorithms"],
        "properties": {
            "algorithms": {
                "type": "array",
                "items": {"enum": list(ALGORITHMS)},
                "minItems": 1,
                "uniqueItems": True,
                "description": "Signature algorithms accepted; a token claiming any other (or none) is refused.",
            },
            "keys": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "description": "Verification keys: an HS256 secret or a PEM public key (RS256/ES256) each.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "kid": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "description": "Key id; a token naming a kid is checked only with that key.",
                        },
                        "secret": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 4096,
                            "description": "HS256 shared secret, at least 32 bytes (never shown again once saved).",
                            "writeOnly": True,
                        },
                        "public_key": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 20000,
                            "description": "PEM public key: RSA ≥ 2048 bits (RS256) or EC P-256 (ES256).",
                        },
                    },
                    "oneOf": [{"required": ["secret"]}, {"required": ["public_key"]}],
                },
            },
            "jwks_url": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "description": "https URL of the identity provider's JWKS (RS256/ES256 keys), refreshed every 5 min.",
            },
            "issuer": {**_ONE_OR_MANY, "description": "Accepted iss value(s); when set, iss is required."},
            "audience": {**_ONE_OR_MANY, "description": "Accepted aud value(s); when set, aud is required."},
            "leeway_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 300,
                "description": "Clock skew tolerated on exp, nbf and iat (default 30).",
            },
            "consumer_claim": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "description": "Claim naming the consumer (its name in the tenant); default sub.",
            },
            "scope_claim": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "description": "Claim holding scopes, space-separated or a list; default scope.",
            },
            "header": {
                "type": "string",
                "pattern": "^[A-Za-z0-9-]{1,64}$",
                "description": "Header carrying the token; default Authorization (Bearer scheme).",
            },
            "cookie": {
                "type": "string",
                "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$",
                "description": "Cookie carrying the token, tried when the header has none.",
            },
            "require_exp": {"type": "boolean", "description": "Refuse tokens without exp (default true)."},
            "max_lifetime_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": 31_536_000,
                "description": "Refuse tokens whose exp is further away than this.",
            },
            "hide_credentials": {
                "type": "boolean",
                "description": "Remove the token from the request forwarded upstream (default false).",
            },
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> JwtConfig:
        algorithms = frozenset(config["algorithms"])
        keys = _keys(config, algorithms)
        jwks_url = _jwks_url(config["jwks_url"]) if "jwks_url" in config else None
        if not keys and jwks_url is None:
            raise ConfigError("keys", "give verification keys, a jwks_url, or both")
        for index, algorithm in enumerate(config["algorithms"]):
            usable = any(k.algorithm == algorithm for k in keys) or (jwks_url is not None and algorithm != "HS256")
            if not usable:
                hint = "no key has a secret" if algorithm == "HS256" else "there is no such public_key and no jwks_url"
                raise ConfigError(f"algorithms[{index}]", f"{algorithm} is listed but {hint}")
        require_exp = config.get("require_exp", True)
        if "max_lifetime_seconds" in config and not require_exp:
            raise ConfigError("max_lifetime_seconds", "needs require_exp: a token without exp never expires")
        return JwtConfig(
            algorithms=algorithms,
            keys=keys,
            jwks_url=jwks_url,
            issuers=_one_or_many(config.get("issuer")),
            audiences=_one_or_many(config.get("audience")),
            leeway=config.get("leeway_seconds", 30),
            consumer_claim=config.get("consumer_claim", "sub"),
            scope_claim=config.get("scope_claim", "scope"),
            header=config.get("header", "authorization"),
            cookie=config.get("cookie"),
            require_exp=require_exp,
            max_lifetime=config.get("max_lifetime_seconds"),
            hide_credentials=config.get("hide_credentials", False),
        )

    @classmethod
    def compile(cls, parsed: JwtConfig, env: CompileEnv) -> JwtHandler:
        directory = env.service("consumers")
        jwks = None
        if parsed.jwks_url is not None:
            jwks = env.service("jwks")
            jwks.register(parsed.jwks_url)  # the loader's thread: the first fetch happens here, not on a request
        versions = env.services.get("tenant_versions") or {}
        return JwtHandler(
            parsed,
            tenant_id=env.api.tenant_id,
            version=int(versions.get(env.api.tenant_id, 0)),
            directory=directory,
            jwks=jwks,
        )
