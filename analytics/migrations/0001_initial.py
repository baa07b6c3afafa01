"""am_usage_records: monthly range partitions on PostgreSQL, a plain table elsewhere.

Django cannot declare a partitioned table, so the database side is written
here by hand (frozen SQL, not generated from the live model) while the state
side is an ordinary CreateModel matching it. Partitions for the previous,
current and next three months are created now; afterwards the scheduled
``usage_partitions`` maintenance and the ingest path keep them ahead.
"""

from datetime import UTC, date, datetime

from django.db import migrations, models

TABLE_SQL = """
CREATE TABLE am_usage_records (
    record_id varchar(40) NOT NULL,
    "timestamp" timestamp with time zone NOT NULL,
    request_id varchar(64) NOT NULL DEFAULT '',
    tenant_id uuid NULL,
    api_id uuid NULL,
    api_version varchar(64) NOT NULL DEFAULT '',
    route varchar(512) NOT NULL DEFAULT '',
    consumer_id uuid NULL,
    application_id uuid NULL,
    key_prefix varchar(32) NOT NULL DEFAULT '',
    method varchar(16) NOT NULL DEFAULT '',
    path varchar(2048) NOT NULL DEFAULT '',
    status smallint NOT NULL DEFAULT 0 CHECK (status >= 0),
    deny_reason varchar(64) NOT NULL DEFAULT '',
    latency_us integer NOT NULL DEFAULT 0,
    upstream_latency_us integer NULL,
    gateway_latency_us integer NOT NULL DEFAULT 0,
    bytes_in bigint NOT NULL DEFAULT 0,
    bytes_out bigint NOT NULL DEFAULT 0,
    client_ip inet NULL,
    user_agent varchar(512) NOT NULL DEFAULT '',
    upstream_target varchar(512) NOT NULL DEFAULT '',
    PRIMARY KEY (record_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE INDEX am_usage_tenant_ts ON am_usage_records (tenant_id, "timestamp");
CREATE INDEX am_usage_ts_brin ON am_usage_records USING brin ("timestamp");
"""


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def create_table(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.create_model(apps.get_model("analytics", "UsageRecord"))
        return
    schema_editor.execute(TABLE_SQL)
    today = datetime.now(UTC).date().replace(day=1)
    for offset in range(-1, 4):
        start = _add_months(today, offset)
        end = _add_months(start, 1)
        schema_editor.execute(
            f"CREATE TABLE IF NOT EXISTS am_usage_records_p{start:%Y_%m} PARTITION OF am_usage_records "
            f"FOR VALUES FROM ('{start.isoformat()} 00:00:00+00') TO ('{end.isoformat()} 00:00:00+00')"
        )


def drop_table(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.delete_model(apps.get_model("analytics", "UsageRecord"))
        return
    schema_editor.execute("DROP TABLE IF EXISTS am_usage_records CASCADE")


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="UsageRecord",
                    fields=[
                        ("pk", models.CompositePrimaryKey("record_id", "timestamp", blank=True, editable=False, primary_key=True, serialize=False)),
                        ("record_id", models.CharField(max_length=40)),
                        ("timestamp", models.DateTimeField()),
                        ("request_id", models.CharField(blank=True, default="", max_length=64)),
                        ("tenant_id", models.UUIDField(blank=True, null=True)),
                        ("api_id", models.UUIDField(blank=True, null=True)),
                        ("api_version", models.CharField(blank=True, default="", max_length=64)),
                        ("route", models.CharField(blank=True, default="", max_length=512)),
                        ("consumer_id", models.UUIDField(blank=True, null=True)),
                        ("application_id", models.UUIDField(blank=True, null=True)),
                        ("key_prefix", models.CharField(blank=True, default="", max_length=32)),
                        ("method", models.CharField(blank=True, default="", max_length=16)),
                        ("path", models.CharField(blank=True, default="", max_length=2048)),
                        ("status", models.PositiveSmallIntegerField(default=0)),
                        ("deny_reason", models.CharField(blank=True, default="", max_length=64)),
                        ("latency_us", models.IntegerField(default=0, help_text="Total time in the gateway, microseconds.")),
                        ("upstream_latency_us", models.IntegerField(blank=True, help_text="None when never forwarded.", null=True)),
                        ("gateway_latency_us", models.IntegerField(default=0, help_text="Total minus upstream: what the gateway added.")),
                        ("bytes_in", models.BigIntegerField(default=0)),
                        ("bytes_out", models.BigIntegerField(default=0)),
                        ("client_ip", models.GenericIPAddressField(blank=True, null=True)),
                        ("user_agent", models.CharField(blank=True, default="", max_length=512)),
                        ("upstream_target", models.CharField(blank=True, default="", max_length=512)),
                    ],
                    options={
                        "db_table": "am_usage_records",
                        "indexes": [models.Index(fields=["tenant_id", "timestamp"], name="am_usage_tenant_ts")],
                    },
                ),
            ],
            database_operations=[],
        ),
        # After the state operation, so the historical model exists for SQLite's create_model.
        migrations.RunPython(create_table, drop_table),
    ]
