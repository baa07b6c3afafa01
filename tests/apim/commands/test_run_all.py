"""``run_all``: the real command in a real process, and its refusal when a child dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import CommandError

from apim.management.commands import run_all
from apim.management.supervisor import ProcessSpec

from .support import run

BASE_DIR = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> set[int]:
    """Direct children of ``pid``, from /proc (Linux)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def get_health(port: int) -> dict | None:
    return get_json(f"http://127.0.0.1:{port}/health")


@pytest.fixture
def local_env(tmp_path):
    """An environment for a throwaway local install: SQLite in ``tmp_path``, migrated."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"APIM_DATA_DIR": str(tmp_path), "APIM_ENV": "local"})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True, timeout=120)
    return env


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="inspects the process tree through /proc")
def test_starts_web_and_gateway_and_sigint_stops_the_whole_tree(local_env):
    port = free_port()
    gateway_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_all", "--web-port", str(port), "--gateway-port", str(gateway_port)],
        cwd=BASE_DIR,
        env=local_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while (body := get_health(port)) is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert body == {"status": "ok"}
        gateway_ready = None
        while gateway_ready is None and time.monotonic() < deadline and proc.poll() is None:
            gateway_ready = get_json(f"http://127.0.0.1:{gateway_port}/__apim/ready")
            time.sleep(0.2)
        assert gateway_ready is not None and gateway_ready["loaded"] is True
        tree = children_of(proc.pid)
        assert tree, "run_all has no child process"
        tree |= {grandchild for child in tree for grandchild in children_of(child)}

        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=15)
        text = output.decode()
        assert proc.returncode == 0, text
        assert f"web: http://127.0.0.1:{port}/admin/" in text
        assert "web | " in text  # the child's own output, prefixed
        assert text.rstrip().endswith("All processes stopped.")
        assert not [pid for pid in tree if alive(pid)]
        assert get_health(port) is None
        assert get_json(f"http://127.0.0.1:{gateway_port}/__apim/health") is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_child_exiting_on_its_own_is_a_command_error(monkeypatch):
    crash = ProcessSpec("web", (sys.executable, "-c", "raise SystemExit(4)"), urls=("http://127.0.0.1:1/",))
    monkeypatch.setattr(run_all, "process_table", lambda **kwargs: [crash])
    with pytest.raises(CommandError, match=r"web exited on its own \(code 4\); stopped the others"):
        run("run_all")


def test_a_child_that_cannot_start_is_a_command_error(monkeypatch, tmp_path):
    missing = ProcessSpec("web", (str(tmp_path / "no-such-program"),))
    monkeypatch.setattr(run_all, "process_table", lambda **kwargs: [missing])
    with pytest.raises(CommandError, match="Could not start a process"):
        run("run_all")


def test_the_process_table_runs_uvicorn_with_this_python():
    web, gateway, rollups = run_all.process_table(host="0.0.0.0", web_port=9999, gateway_port=9998)
    assert rollups.argv[1:] == ("manage.py", "usage_rollup", "--every", "60")
    assert gateway.argv[:3] == (sys.executable, "manage.py", "gateway")
    assert gateway.urls[0] == "http://127.0.0.1:9998"
    assert web.argv[:4] == (sys.executable, "-m", "uvicorn", "apim.asgi:application")
    assert web.argv[4:8] == ("--host", "0.0.0.0", "--port", "9999")
    assert web.urls[0] == "http://127.0.0.1:9999/admin/"
