"""The usage pipeline benchmark (a section of ``make bench``): ingestion rate and rollup time.

Two measurements against the real PostgreSQL on this machine, in a throwaway
database (``--database``, default ``apim_bench_h1``, dropped and recreated,
then migrated):

(a) End-to-end ingestion into the partitioned ``am_usage_records``: ``--records``
    wire records are packed in gateway-sized batches (``APIM_USAGE_BATCH_SIZE``)
    and pushed to a Redis stream, then ONE worker process drains the stream with
    the real drain task code (``analytics.tasks.usage_drain_task``: consumer
    group, COPY into staging, ``INSERT ... ON CONFLICT DO NOTHING``, XACK/XDEL
    after commit) until it is empty. The rate is records / drain wall time
    (Django start-up excluded); the row count is checked afterwards. Redis is a
    private ``redis-server`` on a free port when one is installed (the stream
    holds ~100 MB), else ``--redis-url`` with a private key prefix.
    Target: >= 30,000 records/s.
(b) Rollup of ``--rollup-records`` raw records (default 1,000,000, generated in
    SQL with ``generate_series`` over ``--rollup-hours`` (default 2, ~140
    requests/s) of one UTC day: 10 tenants, 50 APIs, ``--rollup-consumers``
    consumers, 7 status / deny-reason combinations, 2 % without a consumer):
    the minute rollup from raw, then hour and day, timed in a fresh process.
    Target: the whole recompute <= 10 s. The output size, and so the time,
    depends on how many distinct dimension combinations each minute holds;
    ``--rollup-hours 12 --rollup-consumers 5000`` is a sparse worst case
    (nearly one minute row per record).

Usage::

    .venv/bin/python bench/usage_bench.py                 # both, ~1-2 min
    .venv/bin/python bench/usage_bench.py --records 100000 --rollup-records 200000

Writes ``var/bench/usage.json``; exit status 1 with ``--strict`` when a target fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
INGEST_TARGET = 30_000.0
ROLLUP_TARGET_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin_url(server: str) -> str:
    return f"{server.rstrip('/')}/postgres"


def recreate_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server.rstrip('/')}/{name}"


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_env(database_url: str, redis_url: str, stream: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        {
            "DATABASE_URL": database_url,
            "APIM_USAGE_REDIS_URL": redis_url,
            "APIM_USAGE_STREAM": stream,
            "APIM_USAGE_STREAM_GROUP": "bench-ingest",
            "DJANGO_SETTINGS_MODULE": "apim.settings.local",
            "DEBUG": "false",
            "APIM_DATA_DIR": str(ROOT / "var" / "bench" / "data"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],  # noqa: S607
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def wire_records(count: int, *, start: datetime) -> Any:
    """Gateway-like wire tuples (``analytics.records.FIELDS`` order), a few tenants / APIs / consumers."""
    from analytics.records import RecordIds

    ids = RecordIds()
    rng = random.Random(1)  # noqa: S311
    tenants = [str(uuid.uuid4()) for _ in range(5)]
    apis = [str(uuid.uuid4()) for _ in range(20)]
    consumers = [str(uuid.uuid4()) for _ in range(200)]
    base_us = int(start.timestamp() * 1_000_000)
    for i in range(count):
        latency = int(rng.lognormvariate(9, 1))
        upstream = max(latency - 300, 0)
        status = 200 if i % 10 else rng.choice((201, 404, 429, 500))
        yield (
            ids.next(), base_us + i * 1000, uuid.uuid4().hex, tenants[i % 5], apis[i % 20], "v1", "/orders/{id}",
            consumers[i % 200], consumers[(i + 1) % 200], "apim_abc123def456", "GET", f"/orders/{i}", status,
            "rate_limited" if status == 429 else "", latency, upstream, latency - upstream, 120, 2048,
            "203.0.113.9", "bench/1.0", "http://10.0.0.7:8080",
        )  # fmt: skip


def push(redis_url: str, stream: str, count: int, batch_size: int) -> float:
    import redis

    from analytics.records import pack_batch

    client = redis.Redis.from_url(redis_url)
    began = time.perf_counter()
    batch: list[tuple] = []
    pipe = client.pipeline(transaction=False)
    queued = 0
    for record in wire_records(count, start=datetime.now(UTC) - timedelta(hours=1)):
        batch.append(record)
        if len(batch) == batch_size:
            pipe.xadd(stream, {b"b": pack_batch(batch)})
            batch = []
            queued += 1
            if queued % 50 == 0:
                pipe.execute()
    if batch:
        pipe.xadd(stream, {b"b": pack_batch(batch)})
    pipe.execute()
    elapsed = time.perf_counter() - began
    client.close()
    return elapsed


def backend_cpu_s(connection: Any) -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine: /proc)."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drain_child() -> int:
    """In the worker process: call the real drain task until the stream is empty; print JSON."""
    import django

    django.setup()
    from django.db import connection

    from analytics.tasks import usage_drain_task

    pg_before, cpu_before = backend_cpu_s(connection), own_cpu_s()
    began = time.perf_counter()
    passes = []
    while True:
        result = usage_drain_task()
        passes.append(result)
        if not result or not result["entries"]:
            break
    elapsed = time.perf_counter() - began
    pg_after = backend_cpu_s(connection)
    pg_cpu = pg_after - pg_before if pg_before is not None and pg_after is not None else None
    print(json.dumps({"elapsed_s": elapsed, "passes": passes, "worker_cpu_s": own_cpu_s() - cpu_before,
                      "postgres_cpu_s": pg_cpu}))  # fmt: skip
    return 0


GENERATE_SQL = """
INSERT INTO am_usage_records (record_id, "timestamp", request_id, tenant_id, api_id, api_version, route,
    consumer_id, application_id, key_prefix, method, path, status, deny_reason, latency_us, upstream_latency_us,
    gateway_latency_us, bytes_in, bytes_out, client_ip, user_agent, upstream_target)
SELECT 'b' || lpad(to_hex(g), 12, '0'),
       %(start)s::timestamptz + (g::float8 / %(n)s) * %(span)s::interval,
       '',
       ids.tenants[1 + c %% 10],
       ids.apis[1 + (c %% 10) * 5 + (c / 10) %% 5],
       'v1', '/orders/{id}',
       CASE WHEN g %% 50 = 0 THEN NULL ELSE ids.consumers[1 + c] END,
       CASE WHEN g %% 50 = 0 THEN NULL ELSE ids.apps[1 + c] END,
       'apim_abc123def4', 'GET', '/orders/7',
       s.status,
       CASE s.status WHEN 429 THEN 'rate_limited' WHEN 401 THEN 'key_invalid' ELSE '' END,
       s.latency, CASE WHEN s.status IN (429, 401) THEN NULL ELSE s.latency * 3 / 4 END,
       CASE WHEN s.status IN (429, 401) THEN s.latency ELSE s.latency / 4 END,
       100, 2000, '203.0.113.9', 'bench/1.0', 'http://10.0.0.7:8080'
FROM (SELECT ARRAY(SELECT md5('tenant' || i)::uuid FROM generate_series(0, 9) i) AS tenants,
             ARRAY(SELECT md5('api' || i)::uuid FROM generate_series(0, 49) i) AS apis,
             ARRAY(SELECT md5('consumer' || i)::uuid FROM generate_series(0, %(consumers)s - 1) i) AS consumers,
             ARRAY(SELECT md5('app' || i)::uuid FROM generate_series(0, %(consumers)s - 1) i) AS apps) AS ids,
     generate_series(1::bigint, %(n)s::bigint) AS g,
LATERAL (SELECT (g * 7919) %% %(consumers)s AS c,
    (ARRAY[200, 200, 200, 200, 200, 200, 201, 204, 404, 500, 429, 401, 0])[1 + (g * 104729) %% 13] AS status,
    (exp(5 + 4 * ((g * 2654435761) %% 1000) / 1000.0))::int AS latency
) AS s
"""


def rollup_child(day_iso: str) -> int:
    """In a fresh process: time the minute, hour and day recompute of one day."""
    import django

    django.setup()
    from django.db import connection

    from analytics.rollups import rollup_days, rollup_hours, rollup_minutes

    day = datetime.fromisoformat(day_iso)
    end = day + timedelta(days=1)
    now = end + timedelta(minutes=5)
    timings = {}
    rows = {}
    pg_before, cpu_before = backend_cpu_s(connection), own_cpu_s()
    began = time.perf_counter()
    for name, function in (("minute", rollup_minutes), ("hour", rollup_hours), ("day", rollup_days)):
        t0 = time.perf_counter()
        result = function(day, end, now=now)
        timings[name] = time.perf_counter() - t0
        rows[name] = result.rows
    total = time.perf_counter() - began
    pg_after = backend_cpu_s(connection)
    pg_cpu = pg_after - pg_before if pg_before is not None and pg_after is not None else None
    worker_cpu = own_cpu_s() - cpu_before
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(requests), 0) FROM am_usage_rollup_day WHERE bucket_start = %s", [day])
        day_requests = int(cursor.fetchone()[0])
    print(
        json.dumps(
            {
                "elapsed_s": total,
                "timings_s": timings,
                "rows": rows,
                "day_requests": day_requests,
                "worker_cpu_s": worker_cpu,
                "postgres_cpu_s": pg_cpu,
            }
        )
    )
    return 0


def run_child(mode: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603
        [PY, __file__, mode, *extra], env=env, cwd=ROOT, check=False, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_ingest(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    private = PrivateRedis() if shutil.which("redis-server") else None
    redis_url = private.start() if private else args.redis_url
    stream = f"apim-bench-h1:{os.getpid()}:usage"
    try:
        push_s = push(redis_url, stream, args.records, args.batch_size)
        drained = run_child("--drain-child", child_env(database_url, redis_url, stream))
        import psycopg

        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT count(*) FROM am_usage_records").fetchone()[0]
            partitions = conn.execute("SELECT count(DISTINCT tableoid) FROM am_usage_records").fetchone()[0]
        rate = args.records / drained["elapsed_s"]
        return {
            "records": args.records,
            "batch_size": args.batch_size,
            "redis": "private redis-server" if private else redis_url,
            "push_s": round(push_s, 2),
            "drain_s": round(drained["elapsed_s"], 2),
            "worker_cpu_s": round(drained["worker_cpu_s"], 2),
            "postgres_cpu_s": drained["postgres_cpu_s"] and round(drained["postgres_cpu_s"], 2),
            "loadavg_1m": os.getloadavg()[0],
            "rows_in_table": rows,
            "partitions_written": partitions,
            "records_per_s": round(rate),
            "target": INGEST_TARGET,
            "pass": rate >= INGEST_TARGET and rows == args.records,
        }
    finally:
        with contextlib.suppress(Exception):
            import redis

            redis.Redis.from_url(redis_url).delete(stream, f"{stream}:dead")
        if private:
            private.stop()


def bench_rollup(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    import psycopg

    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = day + timedelta(hours=12)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE am_usage_records")
        t0 = time.perf_counter()
        conn.execute(
            GENERATE_SQL,
            {
                "start": start,
                "span": timedelta(hours=args.rollup_hours),
                "n": args.rollup_records,
                "consumers": args.rollup_consumers,
            },
        )
        generate_s = time.perf_counter() - t0
        conn.execute("VACUUM ANALYZE am_usage_records")
    env = child_env(database_url, args.redis_url, "unused")
    result = run_child("--rollup-child", env, day.isoformat())
    return {
        "records": args.rollup_records,
        "day": day.date().isoformat(),
        "span_hours": args.rollup_hours,
        "dimensions": f"10 tenants, 50 APIs, {args.rollup_consumers} consumers/applications, 7 status/deny combos",
        "generate_s": round(generate_s, 2),
        "elapsed_s": round(result["elapsed_s"], 2),
        "worker_cpu_s": round(result["worker_cpu_s"], 2),
        "postgres_cpu_s": result["postgres_cpu_s"] and round(result["postgres_cpu_s"], 2),
        "loadavg_1m": os.getloadavg()[0],
        "timings_s": {k: round(v, 2) for k, v in result["timings_s"].items()},
        "rows": result["rows"],
        "day_requests": result["day_requests"],
        "target_s": ROLLUP_TARGET_S,
        # Every generated record has a tenant: the day's rollup must count each of them once.
        "pass": result["elapsed_s"] <= ROLLUP_TARGET_S and result["day_requests"] == args.rollup_records,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--drain-child":
        return drain_child()
    if len(sys.argv) > 2 and sys.argv[1] == "--rollup-child":
        return rollup_child(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="apim_bench_h1", help="throwaway database (dropped and recreated)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1", help="used only without redis-server")
    parser.add_argument("--records", type=int, default=300_000, help="records for the ingestion run")
    parser.add_argument("--batch-size", type=int, default=500, help="records per stream entry (gateway batch)")
    parser.add_argument("--rollup-records", type=int, default=1_000_000, help="raw records for the rollup run")
    parser.add_argument("--rollup-hours", type=float, default=2.0, help="hours the rollup records span (max 12)")
    parser.add_argument("--rollup-consumers", type=int, default=200, help="consumers (each with one application)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-rollup", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="leave the throwaway database behind")
    parser.add_argument("--output", default=str(ROOT / "var" / "bench" / "usage.json"))
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args()

    database_url = recreate_database(args.postgres, args.database)
    results: dict[str, Any] = {"database": args.database}
    try:
        subprocess.run(  # noqa: S603
            [PY, str(ROOT / "manage.py"), "migrate", "--no-input", "-v0"],
            env=child_env(database_url, args.redis_url, "unused"),
            cwd=ROOT,
            check=True,
        )
        if not args.skip_ingest:
            results["ingest"] = bench_ingest(args, database_url)
            i = results["ingest"]
            print(
                f"(a) ingestion: {i['records']} records pushed in {i['push_s']} s, drained by one worker in "
                f"{i['drain_s']} s = {i['records_per_s']} records/s (target >= {INGEST_TARGET:.0f}; "
                f"{i['rows_in_table']} rows; CPU s: worker {i['worker_cpu_s']}, postgres {i['postgres_cpu_s']}; "
                f"load {i['loadavg_1m']:.1f}) {'PASS' if i['pass'] else 'FAIL'}"
            )
        if not args.skip_rollup:
            results["rollup"] = bench_rollup(args, database_url)
            r = results["rollup"]
            print(
                f"(b) rollup: {r['records']} raw records over {r['span_hours']} h ({r['dimensions']}; generated in "
                f"{r['generate_s']} s) → minute/hour/day in "
                f"{r['elapsed_s']} s {r['timings_s']} rows {r['rows']} (target <= {ROLLUP_TARGET_S:.0f} s; "
                f"CPU s: worker {r['worker_cpu_s']}, postgres {r['postgres_cpu_s']}; load {r['loadavg_1m']:.1f}) "
                f"{'PASS' if r['pass'] else 'FAIL'}"
            )
    finally:
        if not args.keep_db:
            drop_database(args.postgres, args.database)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    passed = all(section["pass"] for key, section in results.items() if isinstance(section, dict))
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
