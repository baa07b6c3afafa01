"""Time the analytics report (what the admin page and GET /api/v1/analytics/ run) over a busy tenant's rollups.

Creates a throwaway tenant with 12 hours of minute rollups (40 dimension rows
a minute: 28,800 rows) and 30 days of hour rollups (200 rows an hour: 144,000
rows), times each report twice (the second run is printed), then deletes all of
it. Run it against the database you want to measure (PostgreSQL is the point);
it never touches other tenants' rows. Not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/apim .venv/bin/python bench/analytics_query_bench.py
"""

from __future__ import annotations

import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apim.settings.local")

import django

django.setup()

from analytics import histogram, queries  # noqa: E402
from analytics.models import HourRollup, MinuteRollup  # noqa: E402
from apim.models import Tenant  # noqa: E402


def _hist(rng: random.Random, samples: int) -> list[int]:
    hist = histogram.empty()
    for _ in range(samples):
        hist[rng.randrange(4, 14)] += rng.randrange(1, 50)
    return hist


def seed(tenant: Tenant, now: datetime) -> None:
    rng = random.Random(1)  # noqa: S311 - reproducible data, not security
    apis = [uuid.uuid4() for _ in range(20)]
    consumers = [uuid.uuid4() for _ in range(50)]
    rows = []
    for minute in range(720):
        for _ in range(40):
            hist = _hist(rng, 3)
            rows.append(
                MinuteRollup(
                    bucket_start=now - timedelta(minutes=720 - minute),
                    tenant_id=tenant.pk,
                    api_id=rng.choice(apis),
                    consumer_id=rng.choice(consumers),
                    status_class=2,
                    requests=sum(hist),
                    errors=rng.randrange(0, 3),
                    latency_us_sum=sum(hist) * 9000,
                    latency_hist=hist,
                )
            )
    MinuteRollup.objects.bulk_create(rows, batch_size=5000)
    rows = []
    for hour in range(24 * 30):
        for _ in range(200):
            hist = _hist(rng, 1)
            rows.append(
                HourRollup(
                    bucket_start=now.replace(minute=0) - timedelta(hours=24 * 30 - hour),
                    tenant_id=tenant.pk,
                    api_id=rng.choice(apis),
                    consumer_id=rng.choice(consumers),
                    status_class=2,
                    requests=sum(hist),
                    errors=1,
                    latency_hist=hist,
                )
            )
    HourRollup.objects.bulk_create(rows, batch_size=5000)


def main() -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tenant = Tenant.objects.create(slug=f"bench-analytics-{uuid.uuid4().hex[:8]}", name="analytics bench")
    try:
        seed(tenant, now)
        cases = (
            ("12 h by minute (28,800 rows)", {"start": now - timedelta(hours=12), "end": now}),
            ("30 d by hour (144,000 rows)", {"start": now - timedelta(days=30), "end": now, "granularity": "hour"}),
        )
        for label, kwargs in cases:
            query = queries.analytics_query_build(tenant=tenant, **kwargs)
            for _ in range(2):
                started = time.perf_counter()
                report = queries.analytics_report(query)
                elapsed = time.perf_counter() - started
            ms = elapsed * 1000
            print(f"{label}: {query.points} points, {report.totals.requests} requests, report in {ms:.0f} ms")
    finally:
        for model in (MinuteRollup, HourRollup):
            model.objects.filter(tenant_id=tenant.pk).delete()
        tenant.delete()


if __name__ == "__main__":
    main()
