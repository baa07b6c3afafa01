"""Personal access tokens for the management REST API."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class PersonalAccessToken(models.Model):
    """A user's credential for the REST API (``Authorization: Bearer apimpat_…``).

    Like an API key, only a keyed hash is stored; ``prefix`` is what lists
    show. A token acts as its user (the user's memberships decide what it may
    touch), can be narrowed to ``read_only``, always expires, and is revoked
    by clearing ``active``. It is not tied to one tenant: the request names the
    tenant and the membership is checked on every request.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    token_id = models.CharField(max_length=32, unique=True, editable=False)
    prefix = models.CharField(max_length=48, editable=False, help_text="Shown instead of the token.")
    digest = models.CharField(max_length=64, editable=False)
    pepper_id = models.CharField(max_length=16, editable=False)
    read_only = models.BooleanField(default=False, help_text="Refuse every request that is not GET, HEAD or OPTIONS.")
    expires_at = models.DateTimeField()
    active = models.BooleanField(default=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "am_access_tokens"
        verbose_name = "personal access token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.prefix

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        if not self.active:
            return "revoked"
        return "expired" if self.is_expired else "active"
