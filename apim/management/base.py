"""What apim's management commands share: lookups by name and readable refusals.

Every command runs its service call through ``ServiceCommand.run_service`` so a
rule violation or invalid input becomes a ``CommandError`` carrying the
service's own message (exit code 1, no traceback) and the transaction rolls
back: nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apim.exceptions import ApplicationError
from apim.models import API, Tenant

T = TypeVar("T")


def validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def run_service(call: Callable[[], T]) -> T:
    """Run a service; turn its refusals into a CommandError with its message."""
    try:
        return call()
    except ValidationError as exc:
        raise CommandError(validation_text(exc)) from None
    except ApplicationError as exc:
        raise CommandError(exc.message) from None


def get_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant named {slug!r}.")
    return tenant


def get_api(tenant: Tenant, spec: str, version: str | None = None) -> API:
    """An API by ``name`` or ``name:version``; without a version the name must be unambiguous."""
    name, _, spec_version = spec.partition(":")
    version = version or spec_version or None
    apis = API.objects.filter(tenant=tenant, name=name)
    if version:
        apis = apis.filter(version=version)
    found = list(apis[:2])
    if not found:
        suffix = f" version {version!r}" if version else ""
        raise CommandError(f"Tenant {tenant.slug!r} has no API named {name!r}{suffix}.")
    if len(found) > 1:
        versions = ", ".join(API.objects.filter(tenant=tenant, name=name).values_list("version", flat=True))
        raise CommandError(
            f"API {name!r} has several versions ({versions}); name one with NAME:VERSION (or --api-version)."
        )
    return found[0]


class ServiceCommand(BaseCommand):
    """Base for commands whose work is one service call (or a few in one transaction)."""

    def say(self, text: str, style: Callable[[str], str] | None = None) -> None:
        self.stdout.write(style(text) if style else text)

    def handle(self, *args: Any, **options: Any) -> None:  # pragma: no cover - subclasses implement
        raise NotImplementedError
