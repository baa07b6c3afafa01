"""manage.py idempotency_purge: deletes idempotency records past the TTL; refuses to cut into live ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from apim.models import IdempotencyRecord
from tests.apim.commands.support import run
from tests.factories import UserFactory


@pytest.fixture
def records(db):
    user = UserFactory()
    ttl = settings.APIM_IDEMPOTENCY_TTL
    for key, age in (("fresh", timedelta(minutes=1)), ("old", ttl + timedelta(hours=1)), ("older", ttl * 3)):
        record = IdempotencyRecord.objects.create(
            user=user, scope="", key=key, fingerprint="f" * 64, status_code=201, response_body=None
        )
        IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)


def test_purges_expired_records(records):
    result = run("idempotency_purge")
    assert "Deleted 2 idempotency record(s)" in result.out
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_dry_run_only_counts(records):
    result = run("idempotency_purge", "--dry-run")
    assert "2 idempotency record(s)" in result.out and "would be deleted" in result.out
    assert IdempotencyRecord.objects.count() == 3


def test_an_older_cutoff_keeps_more(records):
    hours = int(settings.APIM_IDEMPOTENCY_TTL.total_seconds() // 3600) * 2
    result = run("idempotency_purge", f"--older-than-hours={hours}")
    assert "Deleted 1 idempotency record(s)" in result.out
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh", "old"]


@pytest.mark.parametrize("hours", ["-1", "1"])
def test_a_cutoff_below_the_ttl_is_refused(records, hours):
    with pytest.raises(CommandError):
        run("idempotency_purge", f"--older-than-hours={hours}")
    assert IdempotencyRecord.objects.count() == 3
