"""The gateway benchmark (``make bench``): the gateway against nginx and the raw ASGI floor.

Everything runs on this machine, bound to 127.0.0.1 on free ports, and every
child process (each in its own process group) is stopped at the end, also on
failure. In one go:

1. nginx (private prefix in a temp dir, ``worker_processes`` = ``--workers``)
   with two server blocks: the *upstream* (a fixed 100-byte body at ``/``, a
   1 MiB file at ``/1m.bin``, a sparse 1 GiB file at ``/1g.bin``) and a
   *reverse proxy* to it with upstream keepalive.
2. The raw ASGI proxy floor (``bench/raw_proxy.py``), the same floor with the
   gateway's garbage-collector settings (3b, informational), and the gateway
   (``manage.py gateway``, throwaway SQLite data dir, one published API at
   ``/bench`` whose upstream is nginx), both with the same worker count.
3. wrk against (1) direct, (2) nginx proxy, (3) raw floor, (4) gateway,
   (5) the gateway with key-auth + plan rate limit + plan quota (API ``/policed``,
   a real key sent by wrk; limits in Redis when one answers on
   ``--redis-url``, else in process), at 64
   connections (2 threads) and 1 connection (1 thread); median of ``--runs``
   runs (interleaved across servers, so drift hits all alike), after a warm-up.
4. A table with requests/s, p50, p99, ratios to (2) and (3), added p50 at one
   connection over (1), and PASS/FAIL for the targets: (4) ≥ 0.85 × (3) and
   +0.25 ms; (5) ≥ 0.75 × (3) and +0.4 ms.
5. The 1 MiB body through (1), (2), (4): MiB/s and ratio to nginx.
6. A 1 GiB download through the gateway (curl to /dev/null) while sampling
   the gateway workers' VmRSS; growth must stay under 50 MB.
7. Everything, with machine info, into ``var/bench/results.json``.
8. The usage pipeline section, ``bench/usage_bench.py`` (needs PostgreSQL):
   ingestion rate through the Redis stream into the partitioned table, and
   rollup time for 1,000,000 records (``var/bench/usage.json``).

Usage::

    .venv/bin/python bench/run.py                  # default: 10 s runs, 3 each (~5 min)
    .venv/bin/python bench/run.py --quick          # 3 s runs, 1 each, for iteration
    .venv/bin/python bench/run.py --workers 2 --duration 5 --runs 3

Needs nginx and wrk (``make bench`` installs them with apt-get if missing);
CI does not run this.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SMALL_BODY = "ok" + "x" * 97 + "\n"  # 100 bytes
assert len(SMALL_BODY) == 100
MIB = 1024 * 1024
GIB = 1024 * MIB
RSS_LIMIT_MB = 50.0
RPS_TARGET = 0.85
ADDED_P50_TARGET_MS = 0.25
POLICED_RPS_TARGET = 0.75
POLICED_ADDED_P50_TARGET_MS = 0.4
GATEWAY_GC_THRESHOLD = "20000"  # the gateway's default APIM_GATEWAY_GC_THRESHOLD, for row (3b)

NGINX_CONF = """\
{user}
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;

    # (1) the upstream: a fixed small body, a 1 MiB file and a sparse 1 GiB file.
    server {{
        listen 127.0.0.1:{upstream_port};
        root {dir}/www;
        location = / {{
            default_type text/plain;
            return 200 "{body}";
        }}
        location / {{ }}
    }}

    # (2) nginx as a reverse proxy with keepalive to (1).
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

_UNITS_TIME = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_UNITS_BIN = {"B": 1, "KB": 1024, "MB": MIB, "GB": GIB, "TB": 1024 * GIB}


# ---------------------------------------------------------------- processes


class Children:
    """Every process started here, each in its own process group; ``stop_all`` ends them."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv built here
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # the group may outlive its leader (uvicorn workers, nginx workers)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, *, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited ({proc.returncode}); log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL built here
                if resp.status == 200:
                    resp.read()
                    return
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last!r}; log:\n{log.read_text()[-3000:]}")


def descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- wrk


def _time_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unparseable wrk time {text!r}")
    return float(match.group(1)) * _UNITS_TIME[match.group(2)]


def _binary(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([KMGT]?B)", text.strip())
    if not match:
        raise ValueError(f"unparseable wrk size {text!r}")
    return float(match.group(1)) * _UNITS_BIN[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    result["rps"] = float(rps.group(1))
    transfer = re.search(r"^Transfer/sec:\s+(\S+)", output, re.M)
    result["transfer_mib_s"] = _binary(transfer.group(1)) / MIB if transfer else None
    dist = output.split("Latency Distribution", 1)
    if len(dist) != 2:
        raise ValueError(f"no Latency Distribution in wrk output (need --latency):\n{output}")
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", dist[1], re.M):
        result[f"p{pct}_ms"] = _time_ms(value)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+\w+), (\S+) read", output, re.M)
    if total:
        result["requests"] = int(total.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socket_errors"] = sum(int(x) for x in errors.groups()) if errors else 0
    return result


def wrk(
    url: str, *, connections: int, duration: float, threads: int | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    threads = threads or (1 if connections == 1 else 2)
    cmd = [
        WRK,
        *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
    return parse_wrk(proc.stdout)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "transfer_mib_s")
    out: dict[str, Any] = {
        k: statistics.median([r[k] for r in runs]) for k in keys if all(r.get(k) is not None for r in runs)
    }
    out["non_2xx"] = sum(r["non_2xx"] for r in runs)
    out["socket_errors"] = sum(r["socket_errors"] for r in runs)
    out["runs"] = runs
    return out


# ---------------------------------------------------------------- setup


def machine_info(workers: int) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_total = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem_total = fh.readline().split(":", 1)[1].strip()

    def version(cmd: list[str]) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
        except OSError:
            return ""
        text = (proc.stdout + proc.stderr).strip().splitlines()
        return text[0] if text else ""

    def pkg(name: str) -> str:
        from importlib import metadata

        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return ""

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_total": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "workers": workers,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "nginx": version([NGINX, "-v"]),
        "wrk": version([WRK, "-v"]),
        "uvicorn": pkg("uvicorn"),
        "uvloop": pkg("uvloop"),
        "httptools": pkg("httptools"),
        "aiohttp": pkg("aiohttp"),
        "httpx": pkg("httpx"),
    }


def write_nginx(tmp: Path, workers: int, upstream_port: int, proxy_port: int) -> Path:
    ndir = tmp / "nginx"
    for sub in ("www", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (ndir / sub).mkdir(parents=True, exist_ok=True)
    (ndir / "www" / "1m.bin").write_bytes(os.urandom(MIB))
    with open(ndir / "www" / "1g.bin", "wb") as fh:
        fh.truncate(GIB)  # sparse: no 1 GiB written to disk
    # nginx workers may run as another user; let them read the prefix.
    for path in (tmp, ndir, ndir / "www", ndir / "tmp"):
        path.chmod(0o755)
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = ndir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user=user,
            workers=workers,
            dir=ndir,
            upstream_port=upstream_port,
            proxy_port=proxy_port,
            body=SMALL_BODY.strip(),
        )
    )
    return conf


def bench_env(data_dir: Path, client: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # Isolated: SQLite in a throwaway dir, in-memory channel layer (no shared Redis events).
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    env["APIM_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    if client:
        env["APIM_GATEWAY_CLIENT"] = client
    return env


SETUP_SCRIPT = """
from apim.services.tenants import tenant_create
from apim.services.catalog import upstream_create, api_create, api_publish
t = tenant_create(slug="bench", name="bench", actor=None, is_default=True)
u = upstream_create(tenant=t, name="nginx", targets=["{target}"], actor=None)
a = api_create(tenant=t, name="bench", title="bench", base_path="/bench", upstream=u, actor=None)
api_publish(api=a, actor=None)

# (5): key-auth, and a plan whose rate limit and quota never bind but are checked on every request.
from consumers.services import api_key_issue, application_create, consumer_create, plan_create, subscription_create
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save
p = api_create(tenant=t, name="policed", title="policed", base_path="/policed", upstream=u, actor=None)
api_publish(api=p, actor=None)
policy_attachment_save(attachment=PolicyAttachment(tenant=t, api=p, policy="key-auth"), actor=None)
plan = plan_create(tenant=t, name="bench", rate_limit_per_second=1_000_000_000, quota_per_day=2_000_000_000, actor=None)
app = application_create(consumer=consumer_create(tenant=t, name="bench", actor=None), name="bench", actor=None)
subscription_create(application=app, api=p, plan=plan, actor=None)
print("KEY=" + api_key_issue(application=app, actor=None).plaintext)
"""


def setup_database(env: dict[str, str], upstream_url: str) -> str:
    """Migrate and seed the throwaway install; returns the API key for (5)."""
    manage = str(ROOT / "manage.py")
    subprocess.run([PY, manage, "migrate", "--no-input", "-v0"], env=env, cwd=ROOT, check=True)  # noqa: S603
    out = subprocess.run(  # noqa: S603
        [PY, manage, "shell", "-v0", "-c", SETUP_SCRIPT.format(target=upstream_url)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"^KEY=(\S+)$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"the bench setup printed no key: {out!r}")
    return match.group(1)


def redis_answers(url: str) -> bool:
    """True when a Redis answers PING at ``url`` (then (5) keeps its limits there, as in production)."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no Redis: (5) uses the in-process store
        return False


# ---------------------------------------------------------------- the 1 GiB download


def gib_download(url: str, gateway_pid: int) -> dict[str, Any]:
    pids = [p for p in descendants(gateway_pid) if "python" in cmdline(p)]
    before = {p: rss_kb(p) or 0 for p in pids}
    peak = dict(before)
    samples: list[tuple[float, dict[int, int]]] = []
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603
        [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        while proc.poll() is None:
            now = {p: rss_kb(p) or 0 for p in pids}
            samples.append((round(time.monotonic() - started, 2), now))
            for p, value in now.items():
                peak[p] = max(peak[p], value)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    elapsed = time.monotonic() - started
    time.sleep(0.3)
    after = {p: rss_kb(p) or 0 for p in pids}
    status, size, speed = [*out.split(), "0", "0", "0"][:3]
    growth = {p: (max(peak[p], after[p]) - before[p]) / 1024 for p in pids}
    max_growth = max(growth.values()) if growth else float("nan")
    ok = status == "200" and int(size) == GIB
    return {
        "http_status": int(status),
        "bytes": int(size),
        "complete": ok,
        "seconds": round(elapsed, 2),
        "mib_s": float(speed) / MIB,
        "curl_stderr": err.strip(),
        "processes": {str(p): cmdline(p) for p in pids},
        "rss_before_kb": {str(p): v for p, v in before.items()},
        "rss_peak_kb": {str(p): v for p, v in peak.items()},
        "rss_after_kb": {str(p): v for p, v in after.items()},
        "growth_mb": {str(p): round(v, 2) for p, v in growth.items()},
        "max_growth_mb": round(max_growth, 2),
        "samples": len(samples),
        "pass": ok and max_growth < RSS_LIMIT_MB,
    }


# ---------------------------------------------------------------- report


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "—" if value is None else format(value, spec)


def render(results: dict[str, Any]) -> str:
    srv = results["servers"]
    direct, proxy, floor = srv["direct"], srv["nginx_proxy"], srv["raw_floor"]
    lines = [
        f"### Small body ({len(SMALL_BODY)} B), workers={results['machine']['workers']}, "
        f"{results['config']['duration_s']} s × {results['config']['runs']} runs (median)",
        "",
        "| # | server | rps@64 | p50@64 ms | p99@64 ms | rps@1 | p50@1 ms | rps vs (2) | rps vs (3) "
        "| added p50@1 vs (1) ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = (("1", "direct"), ("2", "nginx_proxy"), ("3", "raw_floor"), ("3b", "raw_floor_gc"), ("4", "gateway"))
    for i, key in (*rows, ("5", "policed")):
        if key not in srv:  # results written before (3b) existed
            continue
        s = srv[key]
        c64, c1 = s["c64"], s["c1"]
        lines.append(
            f"| {i} | {s['label']} | {fmt(c64['rps'])} | {fmt(c64['p50_ms'], '.3f')} | {fmt(c64['p99_ms'], '.3f')} "
            f"| {fmt(c1['rps'])} | {fmt(c1['p50_ms'], '.3f')} | {c64['rps'] / proxy['c64']['rps']:.2f} "
            f"| {c64['rps'] / floor['c64']['rps']:.2f} | {c1['p50_ms'] - direct['c1']['p50_ms']:+.3f} |"
        )
    errors = [
        f"{srv[k]['label']}: {srv[k][c]['non_2xx']} non-2xx, {srv[k][c]['socket_errors']} socket errors at {c}"
        for k in srv
        for c in ("c64", "c1")
        if srv[k][c]["non_2xx"] or srv[k][c]["socket_errors"]
    ]
    if errors:
        lines += ["", "**Errors during runs:** " + "; ".join(errors)]
    lines += [
        "",
        "### 1 MiB body (64 connections)",
        "",
        "| server | rps | MiB/s | vs nginx proxy |",
        "|---|---:|---:|---:|",
    ]
    big = results["one_mib"]
    for entry in big.values():
        lines.append(
            f"| {entry['label']} | {fmt(entry['rps'])} | {fmt(entry['transfer_mib_s'])} "
            f"| {entry['transfer_mib_s'] / big['nginx_proxy']['transfer_mib_s']:.2f} |"
        )
    dl = results["one_gib"]
    lines += [
        "",
        "### 1 GiB streamed download through the gateway",
        "",
        f"HTTP {dl['http_status']}, {dl['bytes']} bytes ({'complete' if dl['complete'] else 'INCOMPLETE'}) "
        f"in {dl['seconds']} s ({dl['mib_s']:.0f} MiB/s); gateway worker RSS growth (max over workers): "
        f"{dl['max_growth_mb']:.1f} MB",
        "",
        "### Targets",
        "",
    ]
    for target in results["targets"]:
        lines.append(f"- {'PASS' if target['pass'] else 'FAIL'}: {target['name']} — {target['measured']}")
    if "raw_floor_gc" in srv:
        tuned = srv["raw_floor_gc"]["c64"]["rps"]
        lines += [
            "",
            f"Against (3b), the floor with the gateway's GC settings ({tuned / floor['c64']['rps']:.2f} × (3)): "
            f"(4) {srv['gateway']['c64']['rps'] / tuned:.2f}, (5) {srv['policed']['c64']['rps'] / tuned:.2f} "
            "at 64 connections (informational; the targets are defined against (3)).",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=1, help="worker processes for nginx, the floor and the gateway")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 run each, 1 s warm-up")
    parser.add_argument("--client", default=None, help="APIM_GATEWAY_CLIENT for the gateway (default: its setting)")
    parser.add_argument("--output", default=str(ROOT / "var" / "bench" / "results.json"))
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, nginx conf)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--skip-usage", action="store_true", help="skip the usage pipeline section (PostgreSQL)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="Redis for (5)'s rate limits and quotas (in-process store when none answers)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.runs, args.warmup = 3.0, 1, 1.0
    if args.workers < 1 or args.runs < 1:
        parser.error("--workers and --runs must be at least 1")

    machine = machine_info(args.workers)  # before any load: loadavg_at_start means it
    tmp = Path(tempfile.mkdtemp(prefix="apim-bench-"))
    children = Children()
    began = time.monotonic()
    usage_stream: str | None = None
    try:
        ports = {k: free_port() for k in ("upstream", "proxy", "floor", "floor_gc", "gateway")}
        upstream = f"http://127.0.0.1:{ports['upstream']}"
        env = bench_env(tmp / "data", args.client)
        (tmp / "data").mkdir()

        conf = write_nginx(tmp, args.workers, ports["upstream"], ports["proxy"])
        nginx_log = tmp / "nginx.out"
        nginx = children.start(
            "nginx", [NGINX, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"], env=env, log=nginx_log
        )
        wait_http(upstream + "/", proc=nginx, log=nginx_log)
        wait_http(f"http://127.0.0.1:{ports['proxy']}/", proc=nginx, log=nginx_log)

        api_key = setup_database(env, upstream)
        limit_store = "redis" if redis_answers(args.redis_url) else "in-process"
        if limit_store == "redis":
            usage_stream = f"apim-bench:{os.getpid()}:usage"
            # As in production: limits and usage records go to Redis (the usage stream is deleted at the end).
            env["APIM_RATELIMIT_REDIS_URL"] = args.redis_url
            env["APIM_RATELIMIT_KEY_PREFIX"] = f"apim-bench:{os.getpid()}:"
            env["APIM_USAGE_REDIS_URL"] = args.redis_url
            env["APIM_USAGE_STREAM"] = usage_stream
        floor_cmd = [
            PY,
            "-m",
            "uvicorn",
            "bench.raw_proxy:app",
            "--host",
            "127.0.0.1",
            "--workers",
            str(args.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        floor_log = tmp / "floor.out"
        floor = children.start(
            "raw_floor",
            [*floor_cmd, "--port", str(ports["floor"])],
            env={**env, "RAW_PROXY_UPSTREAM": upstream},
            log=floor_log,
        )
        # The same floor with the gateway's GC settings (frozen import-time objects, young-generation
        # threshold): the targets are defined against (3), this row shows how much of the margin
        # the collector settings give.
        floor_gc_log = tmp / "floor_gc.out"
        floor_gc = children.start(
            "raw_floor_gc",
            [*floor_cmd, "--port", str(ports["floor_gc"])],
            env={
                **env,
                "RAW_PROXY_UPSTREAM": upstream,
                "RAW_PROXY_GC_THRESHOLD": env.get("APIM_GATEWAY_GC_THRESHOLD", GATEWAY_GC_THRESHOLD),
            },
            log=floor_gc_log,
        )
        gw_log = tmp / "gateway.out"
        gateway = children.start(
            "gateway",
            [
                PY,
                str(ROOT / "manage.py"),
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["gateway"]),
                "--workers",
                str(args.workers),
            ],
            env=env,
            log=gw_log,
        )
        wait_http(f"http://127.0.0.1:{ports['floor']}/", proc=floor, log=floor_log)
        wait_http(f"http://127.0.0.1:{ports['floor_gc']}/", proc=floor_gc, log=floor_gc_log)
        wait_http(f"http://127.0.0.1:{ports['gateway']}/bench/", proc=gateway, log=gw_log)

        targets = {
            "direct": ("(1) nginx direct", f"{upstream}/"),
            "nginx_proxy": ("(2) nginx proxy", f"http://127.0.0.1:{ports['proxy']}/"),
            "raw_floor": ("(3) raw ASGI floor", f"http://127.0.0.1:{ports['floor']}/"),
            "raw_floor_gc": ("(3b) floor, gateway's GC", f"http://127.0.0.1:{ports['floor_gc']}/"),
            "gateway": ("(4) gateway", f"http://127.0.0.1:{ports['gateway']}/bench/"),
            "policed": ("(5) gateway + key, limits", f"http://127.0.0.1:{ports['gateway']}/policed/"),
        }
        headers_for = {"policed": {"X-API-Key": api_key}}
        for key, (label, url) in targets.items():
            request = urllib.request.Request(url, headers=headers_for.get(key, {}))  # noqa: S310
            with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
                body = resp.read().decode()
            if body.strip() != SMALL_BODY.strip():
                raise RuntimeError(f"{label} at {url} returned {body!r}, not the fixed body")
            print(f"warm-up {label} ({url})", file=sys.stderr)
            wrk(url, connections=64, duration=args.warmup, headers=headers_for.get(key))

        raw: dict[str, dict[str, list[dict[str, Any]]]] = {k: {"c64": [], "c1": []} for k in targets}
        for conns, slot in ((64, "c64"), (1, "c1")):
            for run in range(args.runs):
                for key, (label, url) in targets.items():
                    r = wrk(url, connections=conns, duration=args.duration, headers=headers_for.get(key))
                    raw[key][slot].append(r)
                    print(
                        f"{label:22} c={conns:<3} run {run + 1}/{args.runs}: {r['rps']:9.0f} rps "
                        f"p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms"
                        + (f" non-2xx {r['non_2xx']}" if r["non_2xx"] else "")
                        + (f" socket errors {r['socket_errors']}" if r["socket_errors"] else ""),
                        file=sys.stderr,
                    )
        servers = {
            key: {"label": label, "url": url, "c64": median_of(raw[key]["c64"]), "c1": median_of(raw[key]["c1"])}
            for key, (label, url) in targets.items()
        }

        one_mib: dict[str, Any] = {}
        for key in ("direct", "nginx_proxy", "gateway"):
            label, url = targets[key]
            url += "1m.bin"
            runs = [wrk(url, connections=64, duration=args.duration) for _ in range(1)]
            one_mib[key] = {"label": label, "url": url, **median_of(runs)}
            print(f"1 MiB {label:22} {one_mib[key]['transfer_mib_s']:8.0f} MiB/s", file=sys.stderr)

        print("1 GiB download through the gateway ...", file=sys.stderr)
        one_gib = gib_download(f"http://127.0.0.1:{ports['gateway']}/bench/1g.bin", gateway.pid)

        gw, fl, dr = servers["gateway"], servers["raw_floor"], servers["direct"]
        rps_ratio = gw["c64"]["rps"] / fl["c64"]["rps"]
        added = gw["c1"]["p50_ms"] - dr["c1"]["p50_ms"]
        po = servers["policed"]
        policed_ratio = po["c64"]["rps"] / fl["c64"]["rps"]
        policed_added = po["c1"]["p50_ms"] - dr["c1"]["p50_ms"]
        clean = all(
            servers[k][c]["non_2xx"] == 0 and servers[k][c]["socket_errors"] == 0
            for k in servers
            for c in ("c64", "c1")
        )
        target_list = [
            {
                "name": f"(4) rps ≥ {RPS_TARGET} × (3) at 64 connections",
                "measured": f"{gw['c64']['rps']:.0f} / {fl['c64']['rps']:.0f} = {rps_ratio:.3f}",
                "value": rps_ratio,
                "pass": rps_ratio >= RPS_TARGET,
            },
            {
                "name": f"(4) added p50 at 1 connection ≤ {ADDED_P50_TARGET_MS} ms over (1)",
                "measured": f"{gw['c1']['p50_ms']:.3f} − {dr['c1']['p50_ms']:.3f} = {added:.3f} ms",
                "value": added,
                "pass": added <= ADDED_P50_TARGET_MS,
            },
            {
                "name": f"(5) rps ≥ {POLICED_RPS_TARGET} × (3) at 64 connections (limits: {limit_store})",
                "measured": f"{po['c64']['rps']:.0f} / {fl['c64']['rps']:.0f} = {policed_ratio:.3f}",
                "value": policed_ratio,
                "pass": policed_ratio >= POLICED_RPS_TARGET,
            },
            {
                "name": f"(5) added p50 at 1 connection ≤ {POLICED_ADDED_P50_TARGET_MS} ms over (1)",
                "measured": f"{po['c1']['p50_ms']:.3f} − {dr['c1']['p50_ms']:.3f} = {policed_added:.3f} ms",
                "value": policed_added,
                "pass": policed_added <= POLICED_ADDED_P50_TARGET_MS,
            },
            {
                "name": f"1 GiB download: gateway RSS growth < {RSS_LIMIT_MB:.0f} MB (and the body arrives complete)",
                "measured": f"{one_gib['max_growth_mb']:.1f} MB, {one_gib['bytes']} bytes",
                "value": one_gib["max_growth_mb"],
                "pass": one_gib["pass"],
            },
            {
                "name": "no non-2xx responses or socket errors in the small-body runs",
                "measured": "clean" if clean else "errors (see table)",
                "value": clean,
                "pass": clean,
            },
        ]
        results = {
            "machine": machine,
            "config": {
                "duration_s": args.duration,
                "runs": args.runs,
                "warmup_s": args.warmup,
                "connections": [64, 1],
                "threads": {"64": 2, "1": 1},
                "small_body_bytes": len(SMALL_BODY),
                "policed_limit_store": limit_store,
                "usage_sink": "redis stream" if limit_store == "redis" else "database (SQLite)",
                "gateway_client": env.get("APIM_GATEWAY_CLIENT", "default setting (aiohttp unless configured)"),
            },
            "servers": servers,
            "one_mib": one_mib,
            "one_gib": one_gib,
            "targets": target_list,
            "elapsed_s": round(time.monotonic() - began, 1),
        }
        table = render(results)
        results["table_markdown"] = table
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(table)
        print(f"\n(results: {out}; {results['elapsed_s']} s)")
        usage_ok = True
        if not args.skip_usage:
            # The usage pipeline section (ingestion rate, rollup time) needs PostgreSQL: bench/usage_bench.py.
            print("\nUsage pipeline (bench/usage_bench.py):", flush=True)
            usage = [PY, str(ROOT / "bench" / "usage_bench.py"), *(["--strict"] if args.strict else [])]
            usage_ok = subprocess.run(usage, cwd=ROOT, check=False).returncode == 0  # noqa: S603
        return 1 if args.strict and not (usage_ok and all(t["pass"] for t in target_list)) else 0
    finally:
        children.stop_all()
        if usage_stream is not None:
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(args.redis_url).delete(usage_stream)
        if args.keep_tmp:
            print(f"temp dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CURL = shutil.which("curl") or "/usr/bin/curl"

if __name__ == "__main__":
    sys.exit(main())
