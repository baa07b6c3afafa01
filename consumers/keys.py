"""The API key format and its keyed hash. No database, no Django models.

A key looks like ``apim_`` + 12-character public id + 32-character secret +
6-character checksum, all base62 (55 characters in all), e.g.
``apim_3kT9xQ2mB7aZ…``. The fixed prefix lets secret scanners spot a leaked
key; the CRC32 checksum lets them (and the gateway) reject a mistyped or
made-up key without a lookup. The public id is the lookup key; only
``HMAC-SHA256(pepper, key)`` is stored, with the pepper's id so peppers can be
rotated. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass

from django.conf import settings

KEY_PREFIX = "apim_"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 32  # 32 base62 chars ≈ 190 bits
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(KEY_PREFIX) + KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(_ALPHABET)


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    plaintext: str

    @property
    def display_prefix(self) -> str:
        return display_prefix(self.key_id)


def display_prefix(key_id: str) -> str:
    """What lists, logs and usage records show of a key: harmless on its own."""
    return f"{KEY_PREFIX}{key_id}"


def generate() -> ParsedKey:
    key_id = _random_base62(KEY_ID_LENGTH)
    body = f"{KEY_PREFIX}{key_id}{_random_base62(SECRET_LENGTH)}"
    return ParsedKey(key_id=key_id, plaintext=body + _checksum(body))


def parse(candidate: str) -> ParsedKey | None:
    """The key's public id if ``candidate`` is well formed with a valid checksum, else None."""
    if not isinstance(candidate, str) or len(candidate) != KEY_LENGTH or not candidate.startswith(KEY_PREFIX):
        return None
    rest = candidate[len(KEY_PREFIX) :]
    if not _ALPHABET_SET.issuperset(rest):
        return None
    body, checksum = candidate[:-CHECKSUM_LENGTH], candidate[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return ParsedKey(key_id=rest[:KEY_ID_LENGTH], plaintext=candidate)


def current_pepper_id() -> str:
    return settings.APIM_KEY_PEPPER_ID


def digest(plaintext: str, *, pepper_id: str | None = None) -> str:
    """``HMAC-SHA256(pepper, plaintext)`` as hex, under the given (default: current) pepper."""
    pid = pepper_id or current_pepper_id()
    try:
        pepper = settings.APIM_KEY_PEPPERS[pid]
    except KeyError:
        raise LookupError(f"API key pepper {pid!r} is not configured") from None
    # hmac.digest is the one-shot C implementation: the gateway computes this on every request.
    return hmac.digest(pepper.encode(), plaintext.encode(), hashlib.sha256).hex()


def matches(plaintext: str, *, stored_digest: str, pepper_id: str) -> bool:
    try:
        candidate = digest(plaintext, pepper_id=pepper_id)
    except LookupError:
        return False
    return hmac.compare_digest(candidate, stored_digest)
