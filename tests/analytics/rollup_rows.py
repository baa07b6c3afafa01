"""Hand-made rollup rows for the dashboard, REST and CSV tests (the queries read nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analytics import histogram
from analytics.models import ROLLUP_MODELS


def hist(**counts: int) -> list[int]:
    """A histogram with ``b<index>=count`` entries, e.g. ``hist(b6=10)`` = ten samples in (7.5, 10] ms."""
    values = histogram.empty()
    for name, count in counts.items():
        values[int(name[1:])] = count
    return values


def rollup(granularity: str, *, bucket_start: datetime, tenant, requests: int, errors: int = 0, **fields):
    """One rollup row; ``latency_hist`` defaults to every request in bucket 6, (7.5, 10] ms."""
    fields.setdefault("latency_hist", hist(b6=requests))
    fields.setdefault("latency_us_sum", requests * 9000)
    fields.setdefault("status_class", 5 if errors else 2)
    return ROLLUP_MODELS[granularity].objects.create(
        bucket_start=bucket_start,
        tenant_id=tenant.pk,
        requests=requests,
        errors=errors,
        **fields,
    )


def recent_hour(hours_ago: int = 3) -> datetime:
    """A whole UTC hour shortly before now (inside the partitions the migrations create)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def seed_usage(*, tenant, api, consumer, application, requests: int = 7) -> dict:
    """A little traffic of a tenant: one rollup row per granularity (in the default 24-hour range) and a raw record.

    ``requests`` differs per tenant in the isolation tests, so a leak shows up as a wrong sum.
    """
    from analytics.models import UsageRecord

    now = datetime.now(UTC)
    ids = {"api_id": api.pk, "consumer_id": consumer.pk, "application_id": application.pk}
    rows = {
        "minute": rollup(
            "minute",
            bucket_start=now.replace(second=0, microsecond=0) - timedelta(minutes=5),
            tenant=tenant,
            requests=requests,
            errors=1,
            deny_reason="rate_limited",
            **ids,
        ),
        "hour": rollup(
            "hour",
            bucket_start=recent_hour(1),
            tenant=tenant,
            requests=requests,
            errors=1,
            deny_reason="rate_limited",
            **ids,
        ),
        "day": rollup(
            "day",
            bucket_start=recent_hour(0).replace(hour=0),
            tenant=tenant,
            requests=requests,
            errors=1,
            deny_reason="rate_limited",
            **ids,
        ),
    }
    record = UsageRecord.objects.create(
        record_id=f"rec-{tenant.slug}-{now.timestamp():.0f}",
        timestamp=now - timedelta(minutes=5),
        tenant_id=tenant.pk,
        key_prefix="apim_abcdefghijkl",
        status=429,
        deny_reason="rate_limited",
        method="GET",
        path="/items",
        **ids,
    )
    return {"rollups": rows, "record": record, "requests": requests}
