"""``manage.py run_all``: start every apim process and stop them together (``make run``).

A deliberately small supervisor: each process is a child running the same
Python; its output is prefixed with its name. Ctrl-C or SIGTERM stops all of
them (SIGTERM, then SIGKILL after a grace period) and exits 0. If one child
dies on its own, the others are stopped and the command exits non-zero, so a
broken install never looks half-alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    url: str | None = None


def process_table(*, host: str, web_port: int) -> list[ProcessSpec]:
    """What ``make run`` starts. New roles (gateway, worker, beat) join this list as they land."""
    python = sys.executable
    return [
        ProcessSpec(
            name="web",
            argv=[
                python,
                "-m",
                "uvicorn",
                "apim.asgi:application",
                "--host",
                host,
                "--port",
                str(web_port),
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            url=f"http://{host}:{web_port}/admin/",
        ),
    ]


def _pump(name: str, stream: IO[bytes], out: IO[str], lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        with lock:
            out.write(f"{name:>7} | {line}\n")
            out.flush()


class Command(BaseCommand):
    help = "Start every apim process (web now; gateway and workers as they land). Ctrl-C stops all."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--web-port", type=int, default=settings.APIM_WEB_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        specs = process_table(host=options["host"], web_port=options["web_port"])
        stopping = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        lock = threading.Lock()
        children: list[tuple[ProcessSpec, subprocess.Popen[bytes]]] = []
        for spec in specs:
            child = subprocess.Popen(  # noqa: S603 - argv built from our own table
                spec.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            )
            children.append((spec, child))
            assert child.stdout is not None
            threading.Thread(target=_pump, args=(spec.name, child.stdout, self.stdout, lock), daemon=True).start()
        for spec in specs:
            if spec.url:
                self.stdout.write(f"{spec.name}: {spec.url}")
        self.stdout.write("Ctrl-C stops everything.")

        failed: ProcessSpec | None = None
        while not stopping.is_set():
            for spec, child in children:
                if child.poll() is not None:
                    failed = spec
                    stopping.set()
                    break
            stopping.wait(0.2)
        self._stop_all(children)
        if failed is not None:
            raise CommandError(f"{failed.name} exited on its own; stopped the others.")
        self.stdout.write("All processes stopped.")

    def _stop_all(self, children: list[tuple[ProcessSpec, subprocess.Popen[bytes]]]) -> None:
        for _, child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _, child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
