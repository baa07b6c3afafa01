"""The personal access token format. No database, no Django models.

A token looks like an API key with its own prefix: ``apimpat_`` + 12-character
public id + 32-character secret + 6-character CRC32 checksum, all base62 (58
characters). The distinct prefix lets secret scanners tell a leaked management
token (which can change a tenant) from a consumer's API key, and keeps one from
ever being accepted as the other. Only ``HMAC-SHA256(pepper, token)`` is stored,
under the same pepper machinery as API keys (``consumers.keys.digest``), so a
database dump is useless without the pepper.
"""

from __future__ import annotations

import hmac
import secrets
import zlib
from dataclasses import dataclass

from consumers import keys

TOKEN_PREFIX = "apimpat_"
TOKEN_ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(TOKEN_PREFIX) + TOKEN_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(_ALPHABET)


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    number, digits = zlib.crc32(body.encode("ascii")), []
    for _ in range(CHECKSUM_LENGTH):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


@dataclass(frozen=True)
class ParsedToken:
    token_id: str
    plaintext: str

    def __repr__(self) -> str:
        return f"ParsedToken(token_id={self.token_id!r}, plaintext='***')"


def display_prefix(token_id: str) -> str:
    """What lists show of a token: enough to recognise it, useless on its own."""
    return f"{TOKEN_PREFIX}{token_id}"


def generate() -> ParsedToken:
    token_id = _random_base62(TOKEN_ID_LENGTH)
    body = f"{TOKEN_PREFIX}{token_id}{_random_base62(SECRET_LENGTH)}"
    return ParsedToken(token_id=token_id, plaintext=body + _checksum(body))


def parse(candidate: str) -> ParsedToken | None:
    """The token's public id if ``candidate`` is well formed with a valid checksum, else None."""
    if not isinstance(candidate, str) or len(candidate) != TOKEN_LENGTH or not candidate.startswith(TOKEN_PREFIX):
        return None
    rest = candidate[len(TOKEN_PREFIX) :]
    if not _ALPHABET_SET.issuperset(rest):
        return None
    body, checksum = candidate[:-CHECKSUM_LENGTH], candidate[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return ParsedToken(token_id=rest[:TOKEN_ID_LENGTH], plaintext=candidate)


digest = keys.digest
matches = keys.matches
current_pepper_id = keys.current_pepper_id
