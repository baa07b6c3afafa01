"""Read-only queries of policy attachments. Every one is scoped by tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from apim.models import Tenant

from .models import PolicyAttachment


def policy_attachment_list(*, tenant: Tenant) -> QuerySet[PolicyAttachment]:
    return PolicyAttachment.objects.filter(tenant=tenant).order_by("policy", "created_at")
