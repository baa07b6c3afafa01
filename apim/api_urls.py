"""The management REST API, version 1: every app's ``api/urls.py`` under ``/api/v1/``.

Later parts (declarative config import/export, OpenAPI import, usage and
analytics) add their app's urls here; the tenant-isolation suite enumerates
this URL conf and fails on any endpoint it does not cover.
"""

from django.urls import include, path

app_name = "api-v1"

urlpatterns = [
    path("", include("apim.api.urls")),
    path("", include("consumers.api.urls")),
    path("", include("policies.api.urls")),
    path("", include("apim.declarative.api.urls")),
    path("", include("analytics.api.urls")),
]
