"""``manage.py gateway``: serve the data plane with uvicorn (uvloop + httptools) on :8081.

With ``--workers N`` (N > 1) the workers share one Prometheus multi-process
directory (``PROMETHEUS_MULTIPROC_DIR``, default ``$APIM_DATA_DIR/gateway-metrics/<port>``),
emptied here before they start so a scrape of any worker reports them all and
nothing of an earlier run (``gateway.metrics_multiprocess``).
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apim.target_addresses import SERVING_PORT_ENV
from gateway.http_protocol import GatewayHttpProtocol
from gateway.metrics_multiprocess import ENV as METRICS_DIR_ENV
from gateway.metrics_multiprocess import prepare_directory


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
        if options["workers"] > 1 or os.environ.get(METRICS_DIR_ENV):
            # Set before uvicorn spawns the workers: prometheus_client reads it once, at import.
            directory = os.environ.get(METRICS_DIR_ENV) or settings.DATA_DIR / "gateway-metrics" / str(options["port"])
            try:
                os.environ[METRICS_DIR_ENV] = str(prepare_directory(directory))
            except OSError as exc:
                raise CommandError(
                    f"Cannot prepare the metrics directory {directory} ({exc}); "
                    f"point {METRICS_DIR_ENV} at a writable directory."
                ) from exc
        # The SSRF rules refuse upstreams on this gateway's own port (a request loop); with
        # --port other than the setting, the workers learn the real one from here.
        os.environ[SERVING_PORT_ENV] = str(options["port"])
        uvicorn.run(
            "gateway.asgi:application",
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            loop="uvloop",
            http=GatewayHttpProtocol,  # httptools with bounded request heads (gateway.http_protocol)
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
