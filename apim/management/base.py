"""What apim's management commands share: the refusal contract and lookups by name.

Commands are an operator's interface, so bad input must end in one readable
line and exit code 1, never a traceback. ``ServiceCommand.execute`` turns the
two ways a service refuses (Django's ``ValidationError`` for field input, our
``ApplicationError`` for rule violations) into ``CommandError`` carrying the
service's own message; the services run in ``transaction.atomic``, so a
refusal leaves the database as it was.

Lookups resolve the names operators type (tenant slug, API ``name:version``,
consumer and application names, key prefixes) and raise ``CommandError``
naming what was not found. They live here, in one place, so every command
words the same miss the same way.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apim.exceptions import ApplicationError
from apim.models import API, Tenant
from consumers.models import APIKey, Application, Consumer
from consumers.selectors import api_key_get_by_prefix


def validation_text(exc: ValidationError) -> str:
    """One line from a ValidationError: ``field: message; other: message``."""
    if hasattr(exc, "error_dict"):
        return "; ".join(
            " ".join(messages) if field == "__all__" else f"{field}: {' '.join(messages)}"
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


class ServiceCommand(BaseCommand):
    """Base for commands whose work is service calls: refusals become ``CommandError``.

    ``say`` and ``success`` are silent under ``--quiet`` (where a command
    offers it); ``reveal_key`` always prints, so a script can capture a key
    with ``--quiet`` and nothing else on stdout. ``-v 0`` does not silence
    them: a password or key not shown is lost for good.
    """

    quiet = False

    def execute(self, *args: Any, **options: Any) -> Any:
        self.quiet = bool(options.get("quiet"))
        try:
            return super().execute(*args, **options)
        except ValidationError as exc:
            raise CommandError(validation_text(exc)) from None
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def say(self, text: str = "") -> None:
        if not self.quiet:
            self.stdout.write(text)

    def success(self, text: str) -> None:
        if not self.quiet:
            self.stdout.write(self.style.SUCCESS(text))

    def reveal_key(self, plaintext: str) -> None:
        """A key's only appearance anywhere: alone on the last line, never logged."""
        self.say("The key (shown once; it cannot be recovered, store it now):")
        self.stdout.write(plaintext)


def get_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant named {slug!r}.")
    return tenant


def get_api(tenant: Tenant, spec: str, version: str | None = None) -> API:
    """An API by ``name`` or ``name:version``; without a version the name must be unambiguous."""
    name, _, spec_version = spec.partition(":")
    if spec_version and version and spec_version != version:
        raise CommandError(f"{spec!r} names version {spec_version!r} but --version says {version!r}.")
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
        raise CommandError(f"API {name!r} has several versions ({versions}); name one with NAME:VERSION.")
    return found[0]


def get_consumer(tenant: Tenant, name: str) -> Consumer:
    consumer = Consumer.objects.filter(tenant=tenant, name=name).first()
    if consumer is None:
        raise CommandError(f"Tenant {tenant.slug!r} has no consumer named {name!r}.")
    return consumer


def get_application(consumer: Consumer, name: str) -> Application:
    application = Application.objects.filter(tenant_id=consumer.tenant_id, consumer=consumer, name=name).first()
    if application is None:
        raise CommandError(f"Consumer {consumer.name!r} has no application named {name!r}.")
    return application


def get_key(tenant: Tenant, prefix: str) -> APIKey:
    """A key by its display prefix (``apim_<id>``) or bare id, within ``tenant`` only."""
    key = api_key_get_by_prefix(tenant=tenant, prefix=prefix.strip())
    if key is None:
        raise CommandError(f"Tenant {tenant.slug!r} has no API key {prefix!r}.")
    return key
