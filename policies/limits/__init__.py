"""Rate limits and quotas: one store round trip per request for every limit that applies.

``merge_limit_handlers`` is the engine's hook: it replaces the rate-limit and
quota handlers of a chain (and adds the limits of the caller's plan) by one
step that checks them all at once (``policies.limits.step``). The step is
added even without rate-limit/quota attachments when the chain authenticates
(key-auth, jwt, or any handler in the 1000–1999 authentication band), because
a subscriber's plan limits apply wherever a subscription is resolved. With no
``limiter`` service (a bare test harness) plan limits are not enforced; the
gateway runtime always provides one.

Plan limits fail open or closed per ``settings.APIM_RATE_LIMIT_FAIL_MODE``
(default ``open``); rate-limit attachments carry their own ``fail_mode``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.base import Handler

AUTH_NAMES = frozenset({"key-auth", "jwt"})
STEP_PRIORITY = 910


def _authenticates(handler: Handler) -> bool:
    return handler.name in AUTH_NAMES or 1000 <= handler.priority < 2000


def plan_fail_closed() -> bool:
    from django.conf import settings

    return str(getattr(settings, "APIM_RATE_LIMIT_FAIL_MODE", "open")).lower() == "closed"


def merge_limit_handlers(
    after: list[Handler], *, before: Sequence[Handler], services: Mapping[str, Any], extra: Mapping[str, Any]
) -> list[Handler]:
    from policies.limits.step import LimitRulesHandler, LimitStep

    own = [h for h in after if isinstance(h, LimitRulesHandler)]
    limiter = services.get("limiter")
    if limiter is None and own:
        limiter = own[0].limiter
    wants_plans = any(_authenticates(h) for h in before)
    if limiter is None or (not own and not wants_plans):
        return after
    step = LimitStep(
        rules=tuple(rule for handler in own for rule in handler.rules),
        limiter=limiter,
        plans=extra.get("plans") or {},
        plan_fail_closed=plan_fail_closed(),
    )
    step.name = "limits"
    step.priority = max((h.priority for h in own), default=STEP_PRIORITY)
    return [h for h in after if not isinstance(h, LimitRulesHandler)] + [step]
