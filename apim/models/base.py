"""What every tenant-owned row shares."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from .tenancy import Tenant


class TenantOwned(models.Model):
    """A row that belongs to exactly one tenant.

    ``clean()`` checks that every foreign key listed in ``same_tenant_fields``
    points at a row of the same tenant, so no form, command or API can wire one
    tenant's consumer to another tenant's API.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    same_tenant_fields: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        if self.tenant_id is None:
            return
        errors = {}
        for field_name in self.same_tenant_fields:
            related = getattr(self, field_name, None)
            if related is not None and getattr(related, "tenant_id", None) != self.tenant_id:
                label = self._meta.get_field(field_name).verbose_name
                errors[field_name] = f"The {label} belongs to another tenant."
        if errors:
            raise ValidationError(errors)
