"""Enumerate every REST endpoint from the URL conf, so suites cover new endpoints or fail."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "api/v1/"
UNSAFE = ("post", "patch", "put", "delete")


@dataclass(frozen=True)
class Endpoint:
    basename: str
    action: str
    method: str
    regex: str

    @property
    def detail(self) -> bool:
        return "(?P<pk>" in self.regex

    def url(self, pk: object | None = None) -> str:
        path = self.regex.replace("^", "").replace("$", "").replace("\\Z", "")
        path = re.sub(r"\(\?P<pk>[^)]*\)", str(pk), path)
        return "/" + path

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.basename}.{self.action}"


def _walk(patterns, prefix=""):  # type: ignore[no-untyped-def]
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def endpoints() -> list[Endpoint]:
    found = []
    for regex, callback in _walk(get_resolver().url_patterns):
        if not regex.lstrip("^").startswith(API_PREFIX):
            continue
        actions = getattr(callback, "actions", None)
        basename = (getattr(callback, "initkwargs", None) or {}).get("basename")
        assert actions and basename, f"{regex} is not a router-registered viewset; cover it explicitly"
        for method, action in actions.items():
            found.append(
                Endpoint(
                    basename=basename,
                    action=action,
                    method=method,
                    regex=regex.replace("^", "", 1) if regex.count("^") > 1 else regex,
                )
            )
    return sorted(set(found), key=lambda e: e.id)
