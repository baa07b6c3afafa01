"""Request ids: 128 random bits, hex, cheap enough for every request."""

from __future__ import annotations

import os


def new_request_id() -> bytes:
    return os.urandom(16).hex().encode()
