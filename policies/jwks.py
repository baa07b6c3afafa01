"""JSON Web Key Sets fetched from identity providers, cached per worker (service ``"jwks"``).

Why the request never waits on the network: a JWKS endpoint that is slow or
down must not turn into slow or hung API calls. So:

* **Compile time** (the loader's thread, off the request path) registers each
  ``jwks_url``; the first registration of a URL fetches it synchronously
  (bounded by ``timeout``), so a fresh gateway verifies tokens from its first
  request. If that fetch fails the policy still compiles, with no keys: tokens
  are refused with 401 (authentication fails closed) until a refresh succeeds.
* **Request time** only reads the cached keys. A request that finds the set
  older than ``refresh_interval`` (5 min), or a token whose ``kid`` is unknown
  (the provider rotated keys), *schedules* a background refresh on the running
  loop — at most one in flight per URL, and for unknown kids at most one per
  ``min_refresh_interval`` (30 s), so forged kids cannot make the gateway
  hammer the provider. The request itself is answered from what is cached
  (an unknown kid is a 401 now; the next token after the refresh passes).

Refreshes are scheduled on demand rather than by a permanent loop: there is
nothing to verify on a worker that gets no traffic, and it works on whatever
loop serves requests (the runtime's, or a test harness's). A failed refresh
keeps the previous keys: a provider's outage must not lock everyone out.

Only asymmetric signing keys are taken from a JWKS (RSA ≥ 2048 bits → RS256,
EC P-256 → ES256): a symmetric ``oct`` key published in a document anyone can
fetch would be a shared secret everyone knows.

Fetches use their own httpx client: no environment proxies (``trust_env``
off), no redirects, a 5 s timeout and a 1 MiB body cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apim.target_addresses import checked_addresses, own_ports, private_targets_allowed

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
MAX_KEYS = 100
MIN_RSA_BITS = 2048
JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})


class JwksError(Exception):
    """A JWKS document that could not be fetched or used."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A key a token may be verified with: only ever with ``algorithm``."""

    kid: str | None
    algorithm: str
    key: Any  # bytes for HS256, a cryptography public key otherwise


@dataclass(slots=True)
class _Source:
    url: str
    keys: tuple[VerifyKey, ...] = ()
    fetched_at: float | None = None  # monotonic time of the last successful fetch
    attempted_at: float = float("-inf")  # monotonic time the last fetch started
    error: str | None = None
    fetches: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def parse_jwks(document: Any) -> tuple[VerifyKey, ...]:
    """The usable signing keys of a JWKS document; unusable entries are skipped (and logged)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('a JWKS document is a JSON object with a "keys" list')
    keys = []
    for index, item in enumerate(document["keys"][:MAX_KEYS]):
        try:
            keys.append(_jwk(item))
        except Exception as exc:  # noqa: BLE001 - one unusable entry must not cost the others
            logger.info("JWKS key %d skipped: %s", index, exc)
    return tuple(keys)


def _jwk(item: Any) -> VerifyKey:
    if not isinstance(item, dict):
        raise JwksError("a key is not a JSON object")
    if item.get("kty") not in ("RSA", "EC"):
        raise JwksError(f"key type {item.get('kty')!r} is not accepted (RSA or EC only)")
    if item.get("use", "sig") != "sig":
        raise JwksError("not a signing key")
    alg = item.get("alg")
    if alg is not None and alg not in JWKS_ALGORITHMS:
        raise JwksError(f"algorithm {alg!r} is not supported")
    parsed = jwt.PyJWK(item)
    key = parsed.key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise JwksError(f"RSA key of {key.key_size} bits is too short")
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        raise JwksError("only RSA and EC P-256 public keys are accepted")
    if alg is not None and alg != algorithm:
        raise JwksError(f"algorithm {alg!r} does not fit the key")
    kid = item.get("kid")
    return VerifyKey(kid=kid if isinstance(kid, str) else None, algorithm=algorithm, key=key)


def _decode(body: bytes | bytearray) -> tuple[VerifyKey, ...]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise JwksError(f"the JWKS is not JSON: {exc}") from None
    return parse_jwks(document)


class JwksCache:
    """Per-URL key sets for one gateway worker. Thread-safe for registration; lock-free reads."""

    def __init__(
        self,
        services: Any = None,
        *,
        refresh_interval: float = 300.0,
        min_refresh_interval: float = 30.0,
        timeout: float = 5.0,
        max_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        self.refresh_interval = refresh_interval
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, url: str) -> None:
        """Know ``url`` from now on; the first registration fetches it synchronously (compile time only)."""
        with self._lock:
            source = self._sources.get(url)
            if source is None:
                source = self._sources[url] = _Source(url=url)
            elif source.fetches:
                return
            source.attempted_at = time.monotonic()
            source.fetches += 1
        try:
            target, headers, extensions = _pinned(url)
            with (
                httpx.Client(trust_env=False, timeout=self.timeout, follow_redirects=False) as client,
                client.stream("GET", target, headers=headers, extensions=extensions) as response,
            ):
                _check_status(response)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise JwksError(f"the JWKS is larger than {self.max_bytes} bytes")
            keys = _decode(body)
        except (httpx.HTTPError, JwksError) as exc:
            source.error = str(exc) or type(exc).__name__
            logger.warning("JWKS %s could not be fetched: %s", url, source.error)
            return
        source.keys, source.fetched_at, source.error = keys, time.monotonic(), None

    def keys(self, url: str) -> tuple[VerifyKey, ...]:
        """The cached keys of ``url`` (request path: no I/O). Schedules a refresh when the set is old."""
        source = self._sources.get(url)
        if source is None:
            return ()
        now = time.monotonic()
        last = source.fetched_at if source.fetched_at is not None else source.attempted_at
        if now - last >= self.refresh_interval or (
            source.fetched_at is None and now - source.attempted_at >= self.min_refresh_interval
        ):
            self._schedule(source, now)
        return source.keys

    def unknown_kid(self, url: str) -> None:
        """A token named a key the set lacks: refresh soon (rate-limited per URL)."""
        source = self._sources.get(url)
        if source is None:
            return
        now = time.monotonic()
        if now - source.attempted_at >= self.min_refresh_interval:
            self._schedule(source, now)

    def status(self, url: str) -> dict[str, Any]:
        source = self._sources.get(url)
        if source is None:
            return {"known": False}
        return {"known": True, "keys": len(source.keys), "fetches": source.fetches, "error": source.error}

    def _schedule(self, source: _Source, now: float) -> None:
        if source.task is not None and not source.task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        source.attempted_at = now
        source.fetches += 1
        task = loop.create_task(self._refresh(source), name=f"apim-jwks-refresh {source.url}")
        source.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, source: _Source) -> None:
        try:
            target, headers, extensions = await asyncio.get_running_loop().run_in_executor(None, _pinned, source.url)
            async with (
                httpx.AsyncClient(trust_env=False, timeout=self.timeout, follow_redirects=False) as client,
                client.stream("GET", target, headers=headers, extensions=extensions) as response,
            ):
                _check_status(response)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise JwksError(f"the JWKS is larger than {self.max_bytes} bytes")
            keys = _decode(body)
        except (httpx.HTTPError, JwksError) as exc:
            source.error = str(exc) or type(exc).__name__
            logger.warning(
                "JWKS %s could not be refreshed (keeping %d keys): %s", source.url, len(source.keys), source.error
            )
            return
        source.keys, source.fetched_at, source.error = keys, time.monotonic(), None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def urls(self) -> Iterable[str]:
        return list(self._sources)


def _pinned(url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Where to fetch ``url`` from: the URL to connect to, the request headers, httpx extensions.

    The name is resolved once and every address judged (loopback, link-local,
    the gateway's own ports are refused: SSRF); the fetch then connects to the
    first checked address itself, with the original name in ``Host`` and as the
    TLS server name (SNI and certificate check), so a DNS answer that changes
    between the check and the connection (rebinding) cannot redirect it.
    """
    headers = {"accept": "application/json"}
    if private_targets_allowed():
        return url, headers, {}
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses, reason = checked_addresses(hostname, port, own_ports=own_ports())
    if reason is not None:
        raise JwksError(f"refused to fetch the JWKS: {reason}")
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    headers["host"] = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": hostname} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, "")), headers, extensions


def _check_status(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise JwksError(f"the JWKS endpoint answered {response.status_code}")
