"""Policy attachments: every write goes through here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from apim.services.common import entity_delete, entity_save

from . import secrets
from .models import PolicyAttachment

if TYPE_CHECKING:
    from apim.services.common import Actor


def policy_attachment_save(*, attachment: PolicyAttachment, actor: Actor) -> PolicyAttachment:
    """Validate and save; a ``[redacted]`` placeholder at a secret's place keeps the stored secret."""
    stored = None
    if attachment.pk is not None and not attachment._state.adding:
        stored = PolicyAttachment.objects.filter(pk=attachment.pk).values_list("config", flat=True).first()
    try:
        attachment.config = secrets.restore(attachment.policy, attachment.config, stored)
    except secrets.RedactedWithoutSecret as exc:
        raise ValidationError({"config": [str(exc)]}) from None
    entity_save(instance=attachment, actor=actor)
    return attachment


def policy_attachment_delete(*, attachment: PolicyAttachment, actor: Actor) -> None:
    entity_delete(instance=attachment, actor=actor)
