"""PostgreSQL down for a while: records wait in the stream, unacknowledged, and land when it returns.

The database here is a throwaway cluster (``initdb`` + ``pg_ctl`` on a free
port) that the test stops and starts; the drains run as real ``manage.py
usage_drain`` processes pointed at it, as the Celery worker would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from analytics.records import pack_batch
from tests.analytics.support import ThrowawayPostgres, make_record, throwaway_postgres_available

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not throwaway_postgres_available(), reason="initdb/pg_ctl not installed")


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def throwaway_pg():
    cluster = ThrowawayPostgres().init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_nothing_is_lost_while_postgresql_is_down(throwaway_pg, redis_client):
    stream = f"apim-test:usage:{uuid.uuid4().hex}"
    with throwaway_pg.connect() as conn:
        conn.execute("CREATE DATABASE apim")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apim.settings.test",
        "DATABASE_URL": throwaway_pg.url("apim"),
        "APIM_USAGE_REDIS_URL": redis_client.apim_url,
        "APIM_USAGE_STREAM": stream,
    }
    env.pop("REDIS_URL", None)
    migrated = manage(env, "migrate", "--no-input", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    try:
        batches = [[make_record() for _ in range(200)] for _ in range(6)]
        for batch in batches:
            redis_client.xadd(stream, {"b": pack_batch(batch)})
        expected = {r[0] for batch in batches for r in batch}

        throwaway_pg.stop()
        failed = manage(env, "usage_drain", "--consumer", "worker-1")
        assert failed.returncode == 1
        assert "Database unavailable" in failed.stderr
        assert redis_client.xlen(stream) == 6  # still there
        assert redis_client.xpending(stream, "apim-usage-ingest")["pending"] >= 1  # delivered, not acknowledged

        throwaway_pg.start()
        # worker-1 is gone; worker-2 claims its pending entries and reads the rest.
        drained = manage(env, "usage_drain", "--consumer", "worker-2", "--claim-idle-ms", "0")
        assert drained.returncode == 0, drained.stderr
        with throwaway_pg.connect("apim") as conn:
            stored = [row[0] for row in conn.execute("SELECT record_id FROM am_usage_records")]
        assert sorted(stored) == sorted(expected)  # every record, once
        assert redis_client.xlen(stream) == 0
        assert redis_client.xpending(stream, "apim-usage-ingest")["pending"] == 0

        again = manage(env, "usage_drain", "--consumer", "worker-2", "--claim-idle-ms", "0")
        assert again.returncode == 0
        with throwaway_pg.connect("apim") as conn:
            assert conn.execute("SELECT count(*) FROM am_usage_records").fetchone()[0] == len(expected)
    finally:
        redis_client.delete(stream, f"{stream}:dead")
