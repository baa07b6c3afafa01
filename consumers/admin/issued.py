"""The "key issued" page: the only place a key's plaintext is ever shown.

The plaintext travels from the service's ``IssuedKey`` to this page inside
the request (never the session, messages, database or logs), and the
response forbids caching so the browser's back button or a proxy cannot
replay it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control

from consumers.models import APIKey
from consumers.services import IssuedKey

TEMPLATE = "admin/consumers/apikey/key_issued.html"
REQUEST_ATTR = "_apim_issued_keys"


def remember_issued(request: HttpRequest, issued: IssuedKey) -> None:
    """Keep a new key for the response of this same request (see ``pop_issued``)."""
    request.__dict__.setdefault(REQUEST_ATTR, []).append(issued)


def pop_issued(request: HttpRequest) -> list[IssuedKey]:
    return request.__dict__.pop(REQUEST_ATTR, [])


def render_issued(request: HttpRequest, modeladmin: Any, issued: list[IssuedKey], *, title: str) -> TemplateResponse:
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": APIKey._meta,
        "issued": issued,
    }
    response = TemplateResponse(request, TEMPLATE, context)
    patch_cache_control(response, no_store=True, no_cache=True, private=True, max_age=0)
    response["Pragma"] = "no-cache"
    return response
