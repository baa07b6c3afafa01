"""``manage.py run_all``: start every apim process and stop them together (``make run``).

The processes are one list, ``process_table``: each role joins it as it lands
(the gateway on 8081, a Celery worker and beat). Every child runs with this
same Python, so ``make run`` needs nothing beyond the project's virtualenv.
Supervision itself (signals, prefixes, stopping) is ``apim.management.supervisor``.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apim.management.supervisor import ProcessSpec, Supervisor


def display_host(host: str) -> str:
    """A host to put in a printed URL: a wildcard bind is reached on loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - comparing, not binding


def process_table(*, host: str, web_port: int, gateway_port: int) -> list[ProcessSpec]:
    """What ``make run`` starts. New roles are added here, e.g.::

    ProcessSpec("worker", (python, "-m", "celery", "-A", "apim", "worker", "--loglevel", "info"))
    ProcessSpec("beat", (python, "-m", "celery", "-A", "apim", "beat", "--loglevel", "info"))
    """
    python = sys.executable
    web = f"http://{display_host(host)}:{web_port}"
    gateway = f"http://{display_host(host)}:{gateway_port}"
    return [
        ProcessSpec(
            name="web",
            # Django's ASGI handler does not speak lifespan; "off" spares a warning at every start.
            argv=(
                python,
                "-m",
                "uvicorn",
                "apim.asgi:application",
                "--host",
                host,
                "--port",
                str(web_port),
                "--lifespan",
                "off",
            ),
            urls=(f"{web}/admin/", f"{web}/health"),
        ),
        ProcessSpec(
            name="gateway",
            argv=(python, "manage.py", "gateway", "--host", host, "--port", str(gateway_port), "--log-level", "info"),
            urls=(gateway, f"{gateway}/__apim/ready"),
        ),
        # Keeps the dashboard's rollups current without a Celery beat (what beat runs every minute).
        ProcessSpec(name="rollups", argv=(python, "manage.py", "usage_rollup", "--every", "60")),
    ]


class Command(BaseCommand):
    help = "Start every apim process (web, gateway, usage rollups). Ctrl-C stops them all."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--web-port", type=int, default=settings.APIM_WEB_PORT, help="Web process port.")
        parser.add_argument(
            "--gateway-port", type=int, default=settings.APIM_GATEWAY_PORT, help="Gateway (data plane) port."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        specs = process_table(host=options["host"], web_port=options["web_port"], gateway_port=options["gateway_port"])
        for spec in specs:
            for url in spec.urls:
                self.stdout.write(f"{spec.name}: {url}")
        self.stdout.write(f"Starting {', '.join(spec.name for spec in specs)}. Ctrl-C stops everything.")
        supervisor = Supervisor(specs, write=self.stdout.write)
        try:
            outcome = supervisor.run()
        except OSError as exc:
            raise CommandError(f"Could not start a process: {exc}") from None
        if not outcome.ok:
            raise CommandError(f"{outcome.failed} exited on its own (code {outcome.returncode}); stopped the others.")
        self.stdout.write("All processes stopped.")
