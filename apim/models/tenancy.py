"""Tenants, the hostnames that select them at the gateway, and memberships."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apim.validators import normalize_host, validate_host, validate_name


class Tenant(models.Model):
    """An organisation using apim. Every catalog and consumer row belongs to one.

    ``config_version`` grows by one on every committed change to anything the
    gateway routes or enforces; gateways compare it with the version of the
    snapshot they serve to know when to rebuild.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(
        max_length=64, unique=True, validators=[validate_name], help_text="Machine name, e.g. acme."
    )
    name = models.CharField(max_length=200)
    is_default = models.BooleanField(
        default=False,
        help_text="Serve requests whose Host matches no tenant (at most one tenant). The demo uses this on localhost.",
    )
    config_version = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "am_tenants"
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="am_tenants_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def validate_constraints(self, exclude=None) -> None:  # type: ignore[no-untyped-def]
        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as exc:
            # Name the tenant that holds the flag instead of the constraint's name.
            if self.is_default:
                holder = Tenant.objects.filter(is_default=True).exclude(pk=self.pk).first()
                if holder is not None:
                    raise ValidationError(
                        {"is_default": f"Tenant {holder.slug!r} already serves unmatched hosts; only one tenant may."}
                    ) from None
            raise exc


class TenantHost(models.Model):
    """A gateway hostname that selects its tenant. Unique across all tenants."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="hosts")
    host = models.CharField(max_length=253, unique=True, validators=[validate_host])

    class Meta:
        db_table = "am_tenant_hosts"
        ordering = ["host"]

    def __str__(self) -> str:
        return self.host

    def clean(self) -> None:
        self.host = normalize_host(self.host)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


# Roles that may operate the tenant in the admin console (change, add, delete).
OPERATOR_ROLES = (Role.OWNER, Role.ADMIN)
# Roles that may look at the tenant's objects in the admin console.
READER_ROLES = (Role.OWNER, Role.ADMIN, Role.VIEWER)


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "am_memberships"
        ordering = ["tenant__slug", "user__username"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="am_memberships_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"
