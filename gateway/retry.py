"""When the proxy may send a failed request again, to another target.

Rule: a retry is allowed while attempts remain (``retries`` further attempts
after the first) and either nothing of the request reached the upstream
(connect failure: no byte sent, so even POST is safe) or the method is
idempotent (RFC 9110 §9.2.2). The caller picks the next target with
``balancer.pick(..., avoid=tried_urls)`` so the same target is not tried twice
while another is available.
"""

from __future__ import annotations

from typing import Final

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def is_idempotent(method: str) -> bool:
    """Methods are case-sensitive (RFC 9110 §9.1): ``get`` is not ``GET``."""
    return method in IDEMPOTENT_METHODS


def may_retry(method: str, request_sent: bool, attempt: int, retries: int, *, body_replayable: bool = True) -> bool:
    """Whether attempt number ``attempt`` (1 = the first), which just failed, may be followed by another.

    ``request_sent``: at least one byte of the request went to the upstream.
    ``body_replayable``: the request body can be sent again (empty or buffered);
    a streamed body that was partly consumed cannot, whatever the method.
    """
    if attempt > retries:
        return False
    if not request_sent:
        return True
    return body_replayable and method in IDEMPOTENT_METHODS
