"""Policy attachments: every write goes through here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apim.services.common import entity_delete, entity_save

from .models import PolicyAttachment

if TYPE_CHECKING:
    from apim.services.common import Actor


def policy_attachment_save(*, attachment: PolicyAttachment, actor: Actor) -> PolicyAttachment:
    entity_save(instance=attachment, actor=actor)
    return attachment


def policy_attachment_delete(*, attachment: PolicyAttachment, actor: Actor) -> None:
    entity_delete(instance=attachment, actor=actor)
