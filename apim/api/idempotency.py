"""``Idempotency-Key`` on creates: a retried request gets the first response, not a second object.

The first successful (2xx) response is stored per (user, tenant, key) in
``IdempotencyRecord`` for ``APIM_IDEMPOTENCY_TTL`` (24 h): a model, not the
cache, so every web worker sees it and an eviction cannot cause a duplicate.
The create and the record commit in one transaction; two concurrent requests
with the same key collide on the record's unique constraint and the loser's
create is rolled back (409). Failed requests are not stored: the client may fix
the body and retry with the same key.

Secrets are never replayed. Replaying a key or token issue would mean storing
its plaintext, which apim never does; the stored copy has the plaintext
fields (``redact``) set to null, and the replay carries
``Idempotent-Replayed: true``. A client that lost the first response knows the
key was created (its prefix is in the replay) and can revoke it and issue another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from apim.exceptions import ApplicationError, Conflict
from apim.models import IdempotencyRecord, Tenant

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class InvalidIdempotencyKey(ApplicationError):
    code = "invalid_idempotency_key"
    status = 400


def _fingerprint(request: Request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder)
    except TypeError:  # uploaded files and other non-JSON bodies
        body = repr(sorted(request.data.items())) if hasattr(request.data, "items") else repr(request.data)
    raw = f"{request.method}\n{request.path}\n{body}".encode()
    return hashlib.sha256(raw).hexdigest()


def _redacted(data: Any, fields: Iterable[str]) -> Any:
    plain = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    if isinstance(plain, dict):
        for field in fields:
            if field in plain:
                plain[field] = None
    return plain


def idempotent(
    request: Request, *, tenant: Tenant | None, handler: Callable[[], Response], redact: Iterable[str] = ()
) -> Response:
    """Run ``handler`` once per idempotency key; without the header, just run it."""
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable characters.", details={HEADER: ["Invalid key."]}
        )
    scope = str(tenant.pk) if tenant is not None else ""
    fingerprint = _fingerprint(request)
    with transaction.atomic():
        existing = IdempotencyRecord.objects.select_for_update().filter(user=request.user, scope=scope, key=key).first()
        if existing is not None and existing.created_at <= timezone.now() - settings.APIM_IDEMPOTENCY_TTL:
            existing.delete()
            existing = None
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise Conflict(
                    f"{HEADER} {key!r} was already used with a different request; use a new key.",
                    code="idempotency_key_reused",
                )
            return Response(existing.response_body, status=existing.status_code, headers={REPLAY_HEADER: "true"})
        response = handler()
        if 200 <= response.status_code < 300:
            try:
                with transaction.atomic():
                    IdempotencyRecord.objects.create(
                        user=request.user,
                        tenant=tenant,
                        scope=scope,
                        key=key,
                        fingerprint=fingerprint,
                        status_code=response.status_code,
                        response_body=_redacted(response.data, redact),
                    )
            except IntegrityError:
                raise Conflict(
                    f"Another request with {HEADER} {key!r} is in progress or just finished; retry it.",
                    code="idempotency_key_in_use",
                ) from None
    return response
