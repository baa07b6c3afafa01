"""Stored responses of REST creates sent with an ``Idempotency-Key`` header."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .tenancy import Tenant


class IdempotencyRecord(models.Model):
    """The first response to a create, replayed when the client retries with the same key.

    Scoped per (user, tenant scope, key): two users, or one user in two
    tenants, may reuse a key string without meeting. ``scope`` is the tenant's
    id or ``""`` for endpoints outside any tenant (a user's own tokens), so the
    unique constraint needs no nullable column. ``fingerprint`` hashes method,
    path and body: the same key with a different request is a client bug (409).
    Secrets in ``response_body`` are redacted before storing.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "am_idempotency_records"
        constraints = [
            models.UniqueConstraint(fields=["user", "scope", "key"], name="am_idempotency_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
