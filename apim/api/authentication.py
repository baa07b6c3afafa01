"""``Authorization: Bearer apimpat_…``: personal access tokens for scripts and CI.

Browsers use Django's session (DRF's ``SessionAuthentication``, which enforces
CSRF on unsafe methods). A malformed, unknown, revoked or expired token, or one
whose user is inactive, fails with the same 401 so a caller learns nothing
about which tokens exist. The ``WWW-Authenticate`` header makes DRF answer 401
(not 403) when no credentials are sent.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apim.selectors import access_token_get_by_plaintext
from apim.services.tokens import token_mark_used

INVALID = "The access token is invalid, expired or revoked."


class AccessTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(INVALID) from None
        token = access_token_get_by_plaintext(plaintext=plaintext)
        if token is None or not token.active or token.expires_at <= timezone.now() or not token.user.is_active:
            raise exceptions.AuthenticationFailed(INVALID)
        token_mark_used(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="apim"'
