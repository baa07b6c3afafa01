"""apim.services.idempotency.idempotency_records_purge, its Celery task and beat entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apim.models import IdempotencyRecord
from apim.services.idempotency import idempotency_records_expired_count, idempotency_records_purge
from tests.factories import UserFactory


def _record(user, key: str, age: timedelta) -> IdempotencyRecord:
    record = IdempotencyRecord.objects.create(
        user=user, scope="", key=key, fingerprint="f" * 64, status_code=201, response_body={"id": key}
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)  # auto_now_add
    return record


@pytest.fixture
def records(db):
    user = UserFactory()
    ttl = settings.APIM_IDEMPOTENCY_TTL
    return {
        "fresh": _record(user, "fresh", timedelta(minutes=5)),
        "almost": _record(user, "almost", ttl - timedelta(minutes=1)),
        "expired": _record(user, "expired", ttl + timedelta(minutes=1)),
        "ancient": _record(user, "ancient", ttl * 30),
    }


def test_only_records_past_the_ttl_are_deleted(records):
    assert idempotency_records_expired_count() == 2
    assert idempotency_records_purge() == 2
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["almost", "fresh"]
    assert idempotency_records_purge() == 0  # idempotent itself


def test_batches_delete_everything_past_the_ttl(db):
    user = UserFactory()
    for n in range(7):
        _record(user, f"old-{n}", settings.APIM_IDEMPOTENCY_TTL * 2)
    _record(user, "new", timedelta(seconds=1))
    assert idempotency_records_purge(batch_size=3) == 7
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_a_shorter_ttl_setting_is_honoured(records, settings):
    settings.APIM_IDEMPOTENCY_TTL = timedelta(minutes=10)
    # "almost" (TTL 24 h - 1 min old) is now expired too; only the 5-minute-old record stays.
    assert idempotency_records_purge() == 3
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_the_celery_task_purges(records):
    from apim.tasks import idempotency_records_purge_task

    assert idempotency_records_purge_task.delay().get() == 2  # eager in the test settings
    assert IdempotencyRecord.objects.count() == 2


def test_beat_runs_the_task_hourly():
    from apim.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["idempotency-purge"]
    assert entry["schedule"] == 3600.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
