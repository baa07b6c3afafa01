"""The built-in echo upstream the demo API points at (local mode only).

It answers with what it received, so a newcomer can see exactly what the
gateway forwarded: method, path, query, headers and body.
"""

from __future__ import annotations

import base64

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

MAX_ECHO_BODY = 64 * 1024


@csrf_exempt
def echo(request: HttpRequest, path: str = "") -> JsonResponse:
    body = request.body[:MAX_ECHO_BODY]
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "query": request.META.get("QUERY_STRING", ""),
            "headers": {key: value for key, value in request.headers.items() if key.lower() != "cookie"},
            "body": text,
            "body_base64": None if text is not None else base64.b64encode(body).decode(),
            "body_truncated": len(request.body) > MAX_ECHO_BODY,
        }
    )
