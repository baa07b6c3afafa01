"""Request ids: unique per request, cheap enough for every request.

A random 64-bit prefix drawn once per worker process plus a counter: unique
across workers and restarts without a system call per request (``os.urandom``
measured about 15 µs per call under load here). Request ids identify, they do
not authenticate, so they need not be unpredictable.
"""

from __future__ import annotations

import itertools
import secrets

_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_request_id() -> bytes:
    return f"{_PREFIX}{next(_COUNTER):016x}".encode()
