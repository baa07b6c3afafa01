"""Personal access tokens: issue, revoke, note their use.

The plaintext exists only in the ``IssuedToken`` returned by ``token_issue``;
it is never stored, logged or put in an audit snapshot (``digest`` is one of
the snapshot's secret fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apim import tokens
from apim.models import PersonalAccessToken

from .common import audit_record, snapshot

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .common import Actor

# Writing last_used_at on every request would turn every read into a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    token: PersonalAccessToken
    plaintext: str

    def __repr__(self) -> str:
        return f"IssuedToken(token={self.token.prefix!r}, plaintext='***')"


def token_issue(
    *,
    user: AbstractBaseUser,
    name: str,
    actor: Actor,
    expires_at: datetime | None = None,
    read_only: bool = False,
    issued_with: PersonalAccessToken | None = None,
) -> IssuedToken:
    """A new token for ``user``; without ``expires_at`` it lives ``APIM_ACCESS_TOKEN_DEFAULT_DAYS``
    (capped at the issuing token's expiry).

    Every token expires, at most ``APIM_ACCESS_TOKEN_MAX_DAYS`` ahead. A token
    minted with another token (``issued_with``) may not outlive it nor be
    broader than it: a leaked token cannot extend its own life or shed a
    read-only restriction.
    """
    now = timezone.now()
    if expires_at is None:
        expires_at = now + timedelta(days=settings.APIM_ACCESS_TOKEN_DEFAULT_DAYS)
        if issued_with is not None:
            expires_at = min(expires_at, issued_with.expires_at)
    if expires_at <= now:
        raise ValidationError({"expires_at": "The expiry date must be in the future."})
    if expires_at > now + timedelta(days=settings.APIM_ACCESS_TOKEN_MAX_DAYS):
        raise ValidationError({"expires_at": f"A token may live at most {settings.APIM_ACCESS_TOKEN_MAX_DAYS} days."})
    if issued_with is not None:
        if issued_with.read_only:
            raise ValidationError({"read_only": "A read-only token cannot issue tokens."})
        if expires_at > issued_with.expires_at:
            raise ValidationError({"expires_at": "A token cannot outlive the token used to issue it."})
    if not getattr(user, "is_active", False):
        raise ValidationError({"user": "Inactive users cannot hold tokens."})
    generated = tokens.generate()
    pepper_id = tokens.current_pepper_id()
    token = PersonalAccessToken(
        user=user,
        name=name,
        token_id=generated.token_id,
        prefix=tokens.display_prefix(generated.token_id),
        digest=tokens.digest(generated.plaintext, pepper_id=pepper_id),
        pepper_id=pepper_id,
        read_only=read_only,
        expires_at=expires_at,
    )
    with transaction.atomic():
        token.full_clean()
        token.save()
        audit_record(
            tenant=None, actor=actor, action="accesstoken.issue", obj=token, before=None, after=snapshot(token)
        )
    return IssuedToken(token=token, plaintext=generated.plaintext)


def token_revoke(*, token: PersonalAccessToken, actor: Actor) -> PersonalAccessToken:
    """Stop a token at once. Revoking twice is harmless (and records nothing)."""

    def change(locked: PersonalAccessToken) -> list[str]:
        if not locked.active:
            return []
        locked.active = False
        locked.revoked_at = timezone.now()
        return ["active", "revoked_at"]

    return _token_change(token, actor=actor, change=change)


def _token_change(token: PersonalAccessToken, *, actor: Actor, change) -> PersonalAccessToken:  # type: ignore[no-untyped-def]
    # PersonalAccessToken has no updated_at, so locked_change's save would fail; lock and record here.
    with transaction.atomic():
        locked = PersonalAccessToken.objects.select_for_update().get(pk=token.pk)
        before = snapshot(locked)
        fields = list(change(locked))
        if fields:
            locked.save(update_fields=fields)
            audit_record(
                tenant=None, actor=actor, action="accesstoken.revoke", obj=locked, before=before, after=snapshot(locked)
            )
    token.refresh_from_db()
    return token


def token_mark_used(*, token: PersonalAccessToken) -> None:
    """Record use at most once per ``LAST_USED_RESOLUTION``; not audited (it is not a change anyone made)."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


__all__ = ["IssuedToken", "token_issue", "token_mark_used", "token_revoke"]
