"""The raw usage record table, ``am_usage_records``.

One row per gateway request, rejected ones included. Append-only: rows are
written by the ingest path (``analytics.ingest``) and removed only by dropping
whole monthly partitions (``analytics.partitions``).

On PostgreSQL the table is range-partitioned by month on ``timestamp`` and its
primary key is ``(record_id, timestamp)`` (a partitioned table's unique keys
must contain the partition column). The migration creates it with SQL of its
own; the model below is how Django reads it, and its ``CompositePrimaryKey``
matches. On SQLite it is a plain table with the same columns and key.

No foreign keys: a record outlives the API, consumer or tenant it mentions, and
foreign keys on a partitioned table would make every insert check four tables.
``tenant_id`` is nullable because a request for a host no tenant serves is
still a request worth counting.
"""

from __future__ import annotations

from django.db import models

from analytics.records import MAX_LENGTHS

USAGE_TABLE = "am_usage_records"


class UsageRecord(models.Model):
    pk = models.CompositePrimaryKey("record_id", "timestamp")
    record_id = models.CharField(max_length=MAX_LENGTHS["record_id"])
    timestamp = models.DateTimeField()
    request_id = models.CharField(max_length=MAX_LENGTHS["request_id"], blank=True, default="")
    tenant_id = models.UUIDField(null=True, blank=True)
    api_id = models.UUIDField(null=True, blank=True)
    api_version = models.CharField(max_length=MAX_LENGTHS["api_version"], blank=True, default="")
    route = models.CharField(max_length=MAX_LENGTHS["route"], blank=True, default="")
    consumer_id = models.UUIDField(null=True, blank=True)
    application_id = models.UUIDField(null=True, blank=True)
    key_prefix = models.CharField(max_length=MAX_LENGTHS["key_prefix"], blank=True, default="")
    method = models.CharField(max_length=MAX_LENGTHS["method"], blank=True, default="")
    path = models.CharField(max_length=MAX_LENGTHS["path"], blank=True, default="")
    status = models.PositiveSmallIntegerField(default=0)
    deny_reason = models.CharField(max_length=MAX_LENGTHS["deny_reason"], blank=True, default="")
    latency_us = models.IntegerField(default=0, help_text="Total time in the gateway, microseconds.")
    upstream_latency_us = models.IntegerField(null=True, blank=True, help_text="None when never forwarded.")
    gateway_latency_us = models.IntegerField(default=0, help_text="Total minus upstream: what the gateway added.")
    bytes_in = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=MAX_LENGTHS["user_agent"], blank=True, default="")
    upstream_target = models.CharField(max_length=MAX_LENGTHS["upstream_target"], blank=True, default="")

    class Meta:
        db_table = USAGE_TABLE
        indexes = [models.Index(fields=["tenant_id", "timestamp"], name="am_usage_tenant_ts")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status} ({self.record_id})"


def _empty_histogram() -> list[int]:
    from analytics.histogram import empty

    return empty()


class UsageRollup(models.Model):
    """Usage aggregated per time bucket and dimensions (minute, hour and UTC day tables).

    One row per (bucket_start, tenant_id, api_id, consumer_id, application_id,
    status_class, deny_reason). Rows are only ever written by
    ``analytics.rollups``, which recomputes a whole bucket at a time (delete
    its rows, insert the aggregate) so a rerun gives identical rows. Readers
    (the dashboard) sum the counters and ``analytics.histogram.merge`` the
    histograms across rows and buckets; they never read raw records.

    On PostgreSQL the tables are range-partitioned by month on
    ``bucket_start`` (migration 0002), and the primary key is ``(bucket_start,
    id)``: its index also serves the recompute's delete by time range, and
    Django only needs ``id`` to be unique, which the shared identity sequence
    guarantees. Tenants are not foreign keys for the same
    reason as on the raw table.
    """

    id = models.BigAutoField(primary_key=True)
    bucket_start = models.DateTimeField(help_text="UTC start of the bucket, aligned to its granularity.")
    tenant_id = models.UUIDField()
    api_id = models.UUIDField(null=True, blank=True)
    consumer_id = models.UUIDField(null=True, blank=True)
    application_id = models.UUIDField(null=True, blank=True)
    status_class = models.PositiveSmallIntegerField(help_text="status // 100 (1..5); 0 when no status was sent.")
    deny_reason = models.CharField(max_length=MAX_LENGTHS["deny_reason"], blank=True, default="")
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0, help_text="Status >= 400 or no status at all.")
    bytes_in = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)
    latency_us_sum = models.BigIntegerField(default=0)
    upstream_latency_us_sum = models.BigIntegerField(default=0)
    gateway_latency_us_sum = models.BigIntegerField(default=0)
    latency_hist = models.JSONField(default=_empty_histogram, help_text="Counts per analytics.histogram bucket.")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.bucket_start:%Y-%m-%d %H:%M} {self.tenant_id} {self.status_class}xx: {self.requests}"


class MinuteRollup(UsageRollup):
    class Meta:
        db_table = "am_usage_rollup_minute"
        indexes = [models.Index(fields=["tenant_id", "bucket_start"], name="am_rollup_minute_tenant_ts")]


class HourRollup(UsageRollup):
    class Meta:
        db_table = "am_usage_rollup_hour"
        indexes = [models.Index(fields=["tenant_id", "bucket_start"], name="am_rollup_hour_tenant_ts")]


class DayRollup(UsageRollup):
    class Meta:
        db_table = "am_usage_rollup_day"
        indexes = [models.Index(fields=["tenant_id", "bucket_start"], name="am_rollup_day_tenant_ts")]


ROLLUP_MODELS: dict[str, type[UsageRollup]] = {"minute": MinuteRollup, "hour": HourRollup, "day": DayRollup}
