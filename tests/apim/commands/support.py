"""Helpers the command tests share (tests/apim/commands and tests/consumers/commands).

``unchanged`` is the "refused without a trace" check: it compares a full
serialisation of every table before and after, so it catches updates
(a status, a config version) as well as added or deleted rows.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

from django.apps import apps
from django.core import serializers
from django.core.management import call_command

from apim.models import API, AuditEvent, Tenant
from consumers.models import APIKey


@dataclass(frozen=True)
class Result:
    out: str
    err: str


def run(*args: str, stdin: str | None = None, **options: object) -> Result:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command(*args, stdout=out, stderr=err, **options)
    return Result(out.getvalue(), err.getvalue())


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Tenant, API, APIKey, AuditEvent)}


def dump_database() -> str:
    """Every row of every table as JSON (what a leaked dump would contain)."""
    return "\n".join(
        serializers.serialize("json", model._default_manager.order_by("pk")) for model in apps.get_models()
    )


@contextlib.contextmanager
def unchanged() -> Iterator[None]:
    """Assert the block leaves the database exactly as it found it."""
    before_counts, before_dump = counts(), dump_database()
    yield
    assert counts() == before_counts
    assert dump_database() == before_dump
