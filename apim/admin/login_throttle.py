"""Sign-in throttling for the admin console: failed passwords are counted, guessing is stopped.

Django's admin login has no limit of its own, so a password can be guessed at
the speed of the server. Here failures are counted in the cache (Redis in
production, so every web process shares the count) per user name and per
client address, over a sliding window of ``APIM_LOGIN_FAILURE_WINDOW``
seconds. Past ``APIM_LOGIN_MAX_FAILURES_PER_USER`` failures for one name, or
``APIM_LOGIN_MAX_FAILURES_PER_IP`` from one address, sign-in answers 429 with
``Retry-After`` *without checking the password* — so the refusal is no oracle
for a correct guess. A successful sign-in clears the name's count.

User names are stored hashed in the cache keys: the cache is no place for a
list of who exists.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

_PREFIX = "apim:login-failures:"


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{_PREFIX}{kind}:{digest}"


def _limits() -> tuple[int, int, int]:
    return (
        getattr(settings, "APIM_LOGIN_MAX_FAILURES_PER_USER", 10),
        getattr(settings, "APIM_LOGIN_MAX_FAILURES_PER_IP", 50),
        getattr(settings, "APIM_LOGIN_FAILURE_WINDOW", 900),
    )


def _recent(key: str, now: float, window: int) -> list[float]:
    return [t for t in cache.get(key) or [] if now - t < window]


def _retry_after(stamps: list[float], limit: int, now: float, window: int) -> int:
    """Seconds until the count drops below ``limit`` again; 0 when it already is."""
    if len(stamps) < limit:
        return 0
    return max(1, int(sorted(stamps)[-limit] + window - now) + 1)


def _note_failure(key: str, now: float, window: int, keep: int) -> None:
    stamps = _recent(key, now, window)
    stamps.append(now)
    cache.set(key, stamps[-keep:], timeout=window)


def throttled_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """``admin.site.login`` behind the failure counters (mounted at ``admin/login/``)."""
    if request.method != "POST":
        return admin.site.login(request, extra_context)
    per_user, per_ip, window = _limits()
    now = time.time()
    username = (request.POST.get("username") or "").strip().lower()
    user_key = _key("user", username)
    ip_key = _key("ip", request.META.get("REMOTE_ADDR") or "")
    wait = max(
        _retry_after(_recent(user_key, now, window), per_user, now, window),
        _retry_after(_recent(ip_key, now, window), per_ip, now, window),
    )
    if wait:
        context = {
            **admin.site.each_context(request),
            "title": "Too many sign-in attempts",
            "retry_after_minutes": max(1, round(wait / 60)),
        }
        response = TemplateResponse(request, "admin/login_throttled.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    response = admin.site.login(request, extra_context)
    if response.status_code == 302 and request.user.is_authenticated:
        cache.delete(user_key)
    else:  # the form came back: wrong name or password (or an inactive / non-staff account)
        _note_failure(user_key, now, window, per_user)
        _note_failure(ip_key, now, window, per_ip)
    return response
