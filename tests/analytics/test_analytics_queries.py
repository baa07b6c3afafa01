"""analytics.queries against hand-computed rollup rows: series, totals, percentiles, top lists, filters, bounds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics import histogram, queries
from analytics.models import UsageRecord
from apim.models import Tenant
from tests.analytics.rollup_rows import hist, recent_hour, rollup
from tests.factories import ApiFactory, ApplicationFactory, ConsumerFactory, TenantFactory

MINUTE = timedelta(minutes=1)


@pytest.fixture
def world(db):
    """Tenant A with four rows in ten minutes (plus two just outside), tenant B with one big row."""
    a, b = TenantFactory(slug="alpha"), TenantFactory(slug="beta")
    api1, api2 = ApiFactory(tenant=a, name="orders"), ApiFactory(tenant=a, name="billing")
    consumer1, consumer2 = ConsumerFactory(tenant=a, name="acme"), ConsumerFactory(tenant=a, name="globex")
    app1, app2 = ApplicationFactory(consumer=consumer1), ApplicationFactory(consumer=consumer2)
    api_b = ApiFactory(tenant=b, name="orders")
    t = recent_hour(3)
    ids = {"api_id": api1.pk, "consumer_id": consumer1.pk, "application_id": app1.pk}
    rollup("minute", bucket_start=t, tenant=a, requests=10, bytes_in=100, bytes_out=1000, **ids)
    rollup(
        "minute",
        bucket_start=t,
        tenant=a,
        requests=5,
        errors=5,
        bytes_out=50,
        latency_hist=hist(b12=5),
        api_id=api2.pk,
        consumer_id=consumer2.pk,
        application_id=app2.pk,
    )
    rollup(
        "minute",
        bucket_start=t + 2 * MINUTE,
        tenant=a,
        requests=4,
        errors=4,
        status_class=4,
        deny_reason="rate_limited",
        latency_hist=hist(b0=4),
        **ids,
    )
    rollup(
        "minute",
        bucket_start=t + 9 * MINUTE,
        tenant=a,
        requests=1,
        errors=1,
        status_class=4,
        deny_reason="no_key",
        latency_hist=hist(b0=1),
        api_id=api1.pk,
    )
    rollup("minute", bucket_start=t + 10 * MINUTE, tenant=a, requests=100, **ids)  # at end: excluded
    rollup("minute", bucket_start=t - MINUTE, tenant=a, requests=100, **ids)  # before start: excluded
    rollup("minute", bucket_start=t, tenant=b, requests=1000, errors=7, api_id=api_b.pk)
    return {
        "a": a,
        "b": b,
        "t": t,
        "api1": api1,
        "api2": api2,
        "api_b": api_b,
        "consumer1": consumer1,
        "consumer2": consumer2,
        "app2": app2,
    }


def _query(world, **kwargs):
    t = world["t"]
    kwargs.setdefault("tenant", world["a"])
    kwargs.setdefault("start", t)
    kwargs.setdefault("end", t + 10 * MINUTE)
    return queries.analytics_query_build(**kwargs)


def test_series_and_totals_match_hand_computed_numbers(world):
    query = _query(world)
    assert query.granularity == "minute"
    series, totals = queries.analytics_series(query)
    assert [p.bucket_start for p in series] == [world["t"] + i * MINUTE for i in range(10)]
    assert [p.requests for p in series] == [15, 0, 4, 0, 0, 0, 0, 0, 0, 1]
    assert [p.errors for p in series] == [5, 0, 4, 0, 0, 0, 0, 0, 0, 1]
    first = series[0]
    assert first.error_rate == pytest.approx(1 / 3, abs=1e-6)
    # 10 samples in (7.5, 10] ms and 5 in (75, 100] ms: ranks 7.5, 14.25 and 14.85 of 15.
    assert first.p50 == pytest.approx(9.375)
    assert first.p95 == pytest.approx(96.25)
    assert first.p99 == pytest.approx(99.25)
    assert (first.bytes_in, first.bytes_out) == (100, 1050)
    assert series[1].p50 is None and series[1].error_rate is None
    assert series[2].p50 == pytest.approx(0.25)  # 4 samples in (0, 0.5]: rank 2 of 4
    assert series[9].p99 == pytest.approx(0.5)  # one sample in (0, 0.5]: the rank is at least 1
    assert totals.requests == 20 and totals.errors == 10
    assert totals.error_rate == 0.5
    assert totals.p50 == pytest.approx(8.75)
    assert totals.p95 == pytest.approx(95.0)
    assert totals.p99 == pytest.approx(99.0)


def test_tenant_b_never_counts_tenant_a(world):
    _, totals = queries.analytics_series(_query(world, tenant=world["b"]))
    assert totals.requests == 1000 and totals.errors == 7
    report = queries.analytics_report(_query(world, tenant=world["b"]))
    assert [row.key for row in report.top_apis] == [str(world["api_b"].pk)]
    assert report.top_consumers == [] and report.deny_reasons == []


def test_top_lists_are_ordered_named_and_bounded(world):
    report = queries.analytics_report(_query(world))
    assert [(r.name, r.requests, r.errors) for r in report.top_apis] == [("orders v1", 15, 5), ("billing v1", 5, 5)]
    assert [(r.name, r.requests) for r in report.top_consumers] == [("acme", 14), ("globex", 5)]
    assert [(r.key, r.requests) for r in report.deny_reasons] == [("rate_limited", 4), ("no_key", 1)]
    assert report.top_apis[1].error_rate == 1.0
    top1 = queries.analytics_report(_query(world, top=1))
    assert [r.name for r in top1.top_apis] == ["orders v1"]
    assert len(top1.top_consumers) == len(top1.deny_reasons) == 1


def test_deleted_api_keeps_its_numbers_without_a_name(world):
    pk = world["api2"].pk
    world["api2"].delete()
    report = queries.analytics_report(_query(world))
    assert (report.top_apis[1].key, report.top_apis[1].name) == (str(pk), None)


@pytest.mark.parametrize(
    ("filters", "requests"),
    [
        ({"api_id": "api2"}, 5),
        ({"api_id": "api1"}, 15),
        ({"consumer_id": "consumer1"}, 14),
        ({"application_id": "app2"}, 5),
        ({"api_id": "api1", "consumer_id": "consumer2"}, 0),
        ({"api_id": "api_b"}, 0),  # another tenant's API: nothing, like a missing one
    ],
)
def test_filters(world, filters, requests):
    args = {name: world[key].pk for name, key in filters.items()}
    _, totals = queries.analytics_series(_query(world, **args))
    assert totals.requests == requests


def test_hour_and_day_granularities_read_their_own_tables(world):
    a, t = world["a"], world["t"]
    rollup("hour", bucket_start=t - timedelta(hours=1), tenant=a, requests=7)
    rollup("hour", bucket_start=t, tenant=a, requests=3, errors=1)
    query = queries.analytics_query_build(
        tenant=a, start=t - timedelta(minutes=30), end=t + timedelta(hours=1), granularity="hour"
    )
    series, totals = queries.analytics_series(query)
    # The range starts mid-hour: the whole bucket it starts in counts.
    assert [(p.bucket_start, p.requests) for p in series] == [(t - timedelta(hours=1), 7), (t, 3)]
    assert totals.requests == 10  # minute rows are not read at hour granularity
    day = t.replace(hour=0) - timedelta(days=1)
    rollup("day", bucket_start=day, tenant=a, requests=42, latency_hist=hist(b26=42))
    query = queries.analytics_query_build(tenant=a, start=day, end=day + timedelta(days=2), granularity="day")
    series, totals = queries.analytics_series(query)
    assert [p.requests for p in series] == [42, 0]
    assert totals.p99 == 60000.0  # the open-ended bucket answers its lower bound


BASE = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "granularity", "points"),
    [
        (timedelta(hours=1), "minute", 60),
        (timedelta(hours=12), "minute", 720),
        (timedelta(hours=13), "hour", 13),
        (timedelta(days=30), "hour", 720),
        (timedelta(days=31), "day", 31),
        (timedelta(days=365), "day", 365),
    ],
)
def test_granularity_is_chosen_from_the_range(span, granularity, points):
    query = queries.analytics_query_build(tenant=Tenant(slug="x"), start=BASE, end=BASE + span)
    assert (query.granularity, query.points) == (granularity, points)


def test_defaults_are_the_last_24_hours():
    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    query = queries.analytics_query_build(tenant=Tenant(slug="x"), now=now)
    assert (query.start, query.end, query.granularity) == (now - timedelta(hours=24), now, "hour")
    assert query.points == 25  # the partial hour at each end is a whole bucket
    assert query.top == queries.DEFAULT_TOP


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"start": BASE, "end": BASE}, "start", "before end"),
        ({"start": BASE + MINUTE, "end": BASE}, "start", "before end"),
        ({"start": BASE, "end": BASE + timedelta(days=2), "granularity": "minute"}, "granularity", "granularity=hour"),
        ({"start": BASE, "end": BASE + timedelta(days=2000), "granularity": "day"}, "granularity", "shorten the range"),
        ({"start": BASE, "end": BASE + timedelta(days=2000)}, "granularity", "shorten the range"),
        ({"granularity": "week"}, "granularity", "minute, hour, day"),
        ({"top": 0}, "top", "Between 1 and 50"),
        ({"top": 51}, "top", "Between 1 and 50"),
        ({"start": datetime(2026, 3, 1)}, "start", "time zone"),
    ],
)
def test_bad_queries_are_refused_with_field_details(kwargs, field, text):
    with pytest.raises(queries.AnalyticsQueryError) as caught:
        queries.analytics_query_build(tenant=Tenant(slug="x"), **kwargs)
    assert caught.value.status == 400
    assert field in caught.value.details
    assert text in " ".join(caught.value.details[field]) + caught.value.message


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("acme", "acme"),
        (None, ""),
        (12, "12"),
    ],
)
def test_csv_cells_cannot_be_formulas(value, cell):
    assert queries.csv_safe(value) == cell


def test_csv_rows_follow_the_report(world):
    rows = list(queries.analytics_csv_rows(queries.analytics_report(_query(world))))
    assert rows[0] == list(queries.CSV_HEADER)
    sections = [row[0] for row in rows[1:]]
    assert sections == ["series"] * 10 + ["totals"] + ["top_api"] * 2 + ["top_consumer"] * 2 + ["deny_reason"] * 2
    assert rows[1][1] == world["t"].isoformat() and rows[1][4:7] == ["15", "5", "0.333333"]
    assert rows[11][4:10] == ["20", "10", "0.5", "8.75", "95.0", "99.0"]


def _record(tenant, at, **fields):
    return UsageRecord.objects.create(
        record_id=uuid.uuid4().hex, timestamp=at, tenant_id=tenant.pk, key_prefix="apim_abc", **fields
    )


def test_usage_record_list_is_scoped_filtered_and_bounded(world):
    a, b = world["a"], world["b"]
    now = datetime.now(UTC)
    mine = _record(a, now - timedelta(minutes=5), status=200, api_id=world["api1"].pk)
    denied = _record(a, now - timedelta(minutes=4), status=429, deny_reason="rate_limited")
    _record(a, now - timedelta(days=2), status=200)  # outside the default 24 hours
    _record(b, now - timedelta(minutes=5), status=200)
    listed = list(queries.usage_record_list(tenant=a).values_list("record_id", flat=True))
    assert listed == [denied.record_id, mine.record_id]
    assert list(queries.usage_record_list(tenant=a, status=429)) == [denied]
    assert list(queries.usage_record_list(tenant=a, deny_reason="rate_limited")) == [denied]
    assert list(queries.usage_record_list(tenant=a, api_id=world["api1"].pk)) == [mine]
    assert queries.usage_record_list(tenant=a, start=now - timedelta(days=3)).count() == 3
    with pytest.raises(queries.AnalyticsQueryError) as caught:
        queries.usage_record_list(tenant=a, start=now - timedelta(days=40))
    assert "start" in caught.value.details


def test_histograms_of_other_bounds_are_not_mixed_in(world):
    rollup("minute", bucket_start=world["t"] + 3 * MINUTE, tenant=world["a"], requests=2, latency_hist=[1, 1])
    with pytest.raises(ValueError, match=f"expected {histogram.NUM_BUCKETS}"):
        queries.analytics_series(_query(world))
    # Other tenants' data is not read, so it cannot break this tenant's series either.
    _, totals = queries.analytics_series(_query(world, tenant=world["b"]))
    assert totals.requests == 1000
