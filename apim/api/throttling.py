"""REST API throttles whose rates come from settings at request time.

DRF's stock throttles copy their rates when the class is imported, so changing
``APIM_API_THROTTLE_RATES`` (env, or a test's ``override_settings``) would not
take effect; these read it on every request (and ``APIM_API_THROTTLE_KEY_PREFIX``,
if set, prefixes their cache keys). A throttled request gets the
429 envelope with ``Retry-After``.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling


class _SettingsRate:
    scope: str

    def get_rate(self) -> str | None:
        return settings.APIM_API_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):  # type: ignore[no-untyped-def]
        key = super().get_cache_key(request, view)  # type: ignore[misc]
        prefix = getattr(settings, "APIM_API_THROTTLE_KEY_PREFIX", "")
        return f"{prefix}{key}" if key and prefix else key


class UserThrottle(_SettingsRate, throttling.UserRateThrottle):
    scope = "user"

    def __init__(self) -> None:
        # Skip the parent's import-time rate lookup; read it now.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)


class AnonThrottle(_SettingsRate, throttling.AnonRateThrottle):
    scope = "anon"

    def __init__(self) -> None:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
