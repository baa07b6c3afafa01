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
