"""The audit trail: one row per mutation, written by the service that made it."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .tenancy import Tenant


class AuditEvent(models.Model):
    """Who did what to which object, when, with the object's state before and after.

    Snapshots never hold secrets: services pass the fields to record, and key
    digests and plaintexts are not among them. Rows are never updated.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="The actor as it was at the time (a user or a command).")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "am_audit_events"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="am_audit_tenant_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}"
