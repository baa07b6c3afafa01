"""Policy attachments at every scope (API-scoped ones are also inline on the API page)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apim.admin.mixins import ModelService, TenantScopedAdmin
from policies import registry, secrets
from policies.models import PolicyAttachment
from policies.services import policy_attachment_delete, policy_attachment_save


class PolicyAttachmentForm(forms.ModelForm):
    """Shows secrets as ``[redacted]``; saving the placeholder back keeps the stored secret.

    The placeholder is swapped back in ``clean_config`` because the model form
    validates the instance (``full_clean``) before any service runs.
    """

    class Meta:
        model = PolicyAttachment
        fields = ("tenant", "policy", "api", "consumer", "config", "enabled", "priority")

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk is not None and "config" in self.fields and not self.is_bound:
            self.initial["config"] = secrets.redact(instance.policy, instance.config)

    def clean_config(self):  # type: ignore[no-untyped-def]
        config = self.cleaned_data.get("config")
        policy = self.cleaned_data.get("policy") or self.instance.policy
        stored = self.instance.config if self.instance.pk is not None else None
        try:
            return secrets.restore(policy, config, stored)
        except secrets.RedactedWithoutSecret as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(PolicyAttachment)
class PolicyAttachmentAdmin(TenantScopedAdmin):
    form = PolicyAttachmentForm
    list_display = ("policy", "scope", "api", "consumer", "tenant", "enabled", "priority", "updated_at")
    list_filter = ("policy", "enabled", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("api", "consumer", "tenant")
    search_fields = ("policy", "api__name", "consumer__name", "tenant__slug")
    autocomplete_fields = ("api", "consumer")
    readonly_fields = ("scope", "config_reference", "created_at", "updated_at")
    fields = (
        "tenant",
        "policy",
        "api",
        "consumer",
        "config",
        "config_reference",
        "enabled",
        "priority",
        "scope",
        "created_at",
        "updated_at",
    )
    service = ModelService(arg="attachment", save=policy_attachment_save, delete=policy_attachment_delete)

    @admin.display(description="Scope")
    def scope(self, obj: PolicyAttachment) -> str:
        return obj.scope

    @admin.display(description="Config reference")
    def config_reference(self, obj: PolicyAttachment | None) -> str:
        """Each policy type's config fields, from its own JSON Schema (the one saving validates against)."""
        types = registry.policy_types()
        chosen = [types[obj.policy]] if obj is not None and obj.policy in types else list(types.values())
        blocks = []
        for cls in chosen:
            rows = format_html_join(
                "",
                "<li><code>{}</code> — {}</li>",
                (
                    (name, field.get("description", json.dumps(field)[:200]))
                    for name, field in cls.schema.get("properties", {}).items()
                ),
            )
            blocks.append(
                format_html(
                    "<details{}><summary><b>{}</b> ({}, priority {}) — on store failure: {}</summary>"
                    "<ul>{}</ul></details>",
                    " open" if len(chosen) == 1 else "",
                    cls.name,
                    cls.title,
                    cls.priority,
                    cls.on_store_failure,
                    rows,
                )
            )
        return format_html_join("", "{}", ((b,) for b in blocks))
