"""``manage.py gateway``: serve the data plane with uvicorn (uvloop + httptools) on :8081."""

from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the API gateway (the data plane)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (0.0.0.0 in a container).")
        parser.add_argument("--port", type=int, default=settings.APIM_GATEWAY_PORT)
        parser.add_argument("--workers", type=int, default=1, help="Worker processes (each keeps its own snapshot).")
        parser.add_argument("--log-level", default="warning")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        if not 0 < options["port"] < 65536:
            raise CommandError("--port must be between 1 and 65535.")
        uvicorn.run(
            "gateway.asgi:application",
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            loop="uvloop",
            http="httptools",
            ws="websockets-sansio",
            lifespan="on",
            interface="asgi3",
            # The gateway applies its own trusted-proxy rules (APIM_TRUSTED_PROXIES);
            # uvicorn's would rewrite the client address from X-Forwarded-For first.
            proxy_headers=False,
            access_log=False,
            # The upstream's Server and Date headers pass through; the gateway adds none of its own.
            server_header=False,
            date_header=False,
            log_level=options["log_level"],
            timeout_graceful_shutdown=30,
        )
