"""Liveness and readiness for the web process (the Kubernetes probes use them)."""

from __future__ import annotations

import logging
import uuid

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def liveness(request: HttpRequest) -> JsonResponse:
    """The process answers. Checks nothing else, so a database outage never restarts pods."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        logger.warning("readiness: database unreachable: %s", type(exc).__name__)
        return type(exc).__name__
    return None


def _check_cache() -> str | None:
    probe = f"health:{uuid.uuid4().hex}"
    try:
        cache.set(probe, "1", timeout=5)
        ok = cache.get(probe) == "1"
        cache.delete(probe)
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: cache unreachable: %s", type(exc).__name__)
        return type(exc).__name__
    return None if ok else "cache did not return the value it was given"


@never_cache
@require_safe
def readiness(request: HttpRequest) -> JsonResponse:
    """Database and cache reachable: 200, else 503 naming what failed (never the error text)."""
    checks = {"database": _check_database(), "cache": _check_cache()}
    ready = all(result is None for result in checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {name: ("ok" if result is None else f"failed: {result}") for name, result in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
