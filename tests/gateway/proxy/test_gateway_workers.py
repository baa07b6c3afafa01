"""``manage.py gateway --workers 2`` as operators run it: every worker serves, and every
worker picks up a change made by another process (a management command) on its own."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

BASE_DIR = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_install(tmp_path):
    """A migrated, seeded throwaway install (SQLite file), shared by separate processes."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"APIM_DATA_DIR": str(tmp_path), "APIM_ENV": "local", "APIM_GATEWAY_POLL_INTERVAL": "0.2"})
    web_port = free_port()
    env["APIM_WEB_PORT"] = str(web_port)
    outputs = [
        subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=BASE_DIR,
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
        ).stdout
        for argv in (["migrate", "-v0"], ["seed_demo"])
    ]
    key = re.search(r"Demo API key\s*:\s*(apim_\w+)", outputs[1])
    assert key, outputs[1]
    return env, web_port, {"X-API-Key": key.group(1)}


def test_two_workers_serve_and_both_reload(local_install):
    env, web_port, key = local_install
    gw_port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "apim.asgi:application", "--port", str(web_port), "--lifespan", "off"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gateway = subprocess.Popen(
        [sys.executable, "manage.py", "gateway", "--port", str(gw_port), "--workers", "2"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{gw_port}"
    try:
        with httpx.Client(timeout=5, trust_env=False) as http:
            deadline = time.monotonic() + 60
            status = None
            while time.monotonic() < deadline:
                try:
                    status = http.get(f"{url}/echo/hello", headers=key).status_code
                except httpx.TransportError:
                    status = None
                if status == 200:
                    break
                time.sleep(0.2)
            assert status == 200
            # New connections each time, so both workers answer over the series (paced under
            # the demo plan's 10 requests a second).
            seen = set()
            for _ in range(20):
                seen.add(httpx.get(f"{url}/echo/x", headers=key, trust_env=False).status_code)
                time.sleep(0.15)
            assert seen == {200}
            assert httpx.get(f"{url}/echo/x", trust_env=False).status_code == 401  # the demo API takes keys

            for action in ("deprecate", "retire"):
                subprocess.run(
                    [sys.executable, "manage.py", "api_lifecycle", "--tenant", "demo", "echo", action],
                    cwd=BASE_DIR,
                    env=env,
                    check=True,
                    timeout=60,
                    capture_output=True,
                )
            deadline = time.monotonic() + 10
            statuses: list[int] = []
            while time.monotonic() < deadline:
                statuses = [httpx.get(f"{url}/echo/x", trust_env=False).status_code for _ in range(20)]
                if set(statuses) == {404}:
                    break
                time.sleep(0.1)
            assert set(statuses) == {404}, statuses
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        web.terminate()
        gateway.wait(timeout=20)
        web.wait(timeout=20)
    assert gateway.returncode == 0
