"""The console's analytics page (``/admin/analytics/``) and its CSV export.

Tenant scoping follows the console's rule: a superuser chooses any tenant; any
other staff user sees only tenants where they are an owner, admin or viewer
(a tenant they are not a member of is a 404, like one that does not exist).
The numbers come from ``analytics.queries`` (the rollups) and are handed to the
page as JSON through ``json_script``; ``static/analytics/dashboard.js`` draws
them with the vendored Chart.js. No inline script, so a strict CSP holds.
The CSV export answers exactly the query the page shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from analytics import queries
from analytics.api.serializers import AnalyticsReportOutputSerializer
from analytics.api.views import analytics_csv_response, csv_filename
from apim.models import Tenant
from apim.selectors import tenant_list_for_user

RANGES: dict[str, tuple[str, timedelta]] = {
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
}
DEFAULT_RANGE = "24h"
# What the page and the export keep from the query string (the filters, nothing else).
FILTER_FIELDS = ("tenant", "range", "start", "end", "granularity", "api", "consumer", "application")


class AnalyticsFilterForm(forms.Form):
    """The page's filters. Choices for API, consumer and application are the tenant's own only."""

    range = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in RANGES.items()], required=False, label="Time range"
    )
    start = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Overrides the time range.",
    )
    end = forms.DateTimeField(
        required=False,
        label="To (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    granularity = forms.ChoiceField(
        choices=[("", "Automatic"), *[(g, g.capitalize()) for g in queries.GRANULARITIES]], required=False
    )
    api = forms.ChoiceField(required=False, label="API")
    consumer = forms.ChoiceField(required=False)
    application = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, choices: dict[str, list[tuple[str, str]]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("api", "consumer", "application"):
            self.fields[name].choices = [("", "All"), *choices[name]]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in ("start", "end"):
            value = data.get(name)
            # The inputs say UTC; a value without a zone is read as UTC, not the server's zone.
            if value is not None and value.tzinfo is None:
                data[name] = value.replace(tzinfo=UTC)
        return data

    def query_arguments(self, *, now: datetime) -> dict[str, Any]:
        data = self.cleaned_data
        start, end = data.get("start"), data.get("end")
        if start is None:
            span = RANGES[data.get("range") or DEFAULT_RANGE][1]
            end = end or now
            start = end - span
        return {
            "start": start,
            "end": end,
            "granularity": data.get("granularity") or None,
            "api_id": _uuid(data.get("api")),
            "consumer_id": _uuid(data.get("consumer")),
            "application_id": _uuid(data.get("application")),
        }


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def viewable_tenants(request: HttpRequest) -> QuerySet[Tenant]:
    """Tenants whose analytics this user may see: all for a superuser, else owner/admin/viewer memberships."""
    return tenant_list_for_user(user=request.user).order_by("slug")


def _tenant(request: HttpRequest, tenants: QuerySet[Tenant]) -> Tenant | None:
    slug = (request.GET.get("tenant") or "").strip()
    if slug:
        tenant = tenants.filter(slug=slug).first()
        if tenant is None:
            raise Http404("No such tenant.")
        return tenant
    only = list(tenants[:2])
    return only[0] if len(only) == 1 else None


def _build(request: HttpRequest) -> dict[str, Any]:
    """Resolve the tenant, validate the filters and run the query; what both views need."""
    tenants = viewable_tenants(request)
    if not tenants.exists():
        raise PermissionDenied("You are not a member of any tenant.")
    tenant = _tenant(request, tenants)
    state: dict[str, Any] = {"tenants": tenants, "tenant": tenant, "report": None, "error": None}
    if tenant is None:
        state["form"] = AnalyticsFilterForm(choices={"api": [], "consumer": [], "application": []})
        return state
    data = request.GET if any(name in request.GET for name in FILTER_FIELDS[1:]) else None
    form = AnalyticsFilterForm(data, choices=queries.analytics_filter_choices(tenant=tenant), initial={"range": "24h"})
    state["form"] = form
    if data is not None and not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        state["error"] = f"Correct the filters ({problems})."
        return state
    arguments = form.query_arguments(now=datetime.now(UTC)) if data is not None else {}
    try:
        query = queries.analytics_query_build(tenant=tenant, **arguments)
    except queries.AnalyticsQueryError as exc:
        state["error"] = exc.message
        return state
    state["report"] = queries.analytics_report(query)
    return state


def _querystring(request: HttpRequest, tenant: Tenant) -> str:
    params = {name: request.GET[name] for name in FILTER_FIELDS if request.GET.get(name)}
    params["tenant"] = tenant.slug
    return urlencode(params)


def analytics_page(request: HttpRequest) -> HttpResponse:
    state = _build(request)
    report = state["report"]
    tenant = state["tenant"]
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "subtitle": tenant.name if tenant else None,
        "tenants": state["tenants"],
        "tenant": tenant,
        "form": state["form"],
        "error": state["error"],
        "report": report,
        "report_data": AnalyticsReportOutputSerializer(report).data if report else None,
        "csv_url": f"{reverse('admin-analytics-csv')}?{_querystring(request, tenant)}" if report else None,
    }
    status = 400 if state["error"] else 200
    return TemplateResponse(request, "admin/analytics/dashboard.html", context, status=status)


def analytics_csv(request: HttpRequest) -> HttpResponse:
    state = _build(request)
    if state["tenant"] is None:
        return HttpResponse("Choose a tenant (?tenant=slug).", status=400, content_type="text/plain")
    if state["report"] is None:
        return HttpResponse(state["error"] or "Invalid filters.", status=400, content_type="text/plain")
    report = state["report"]
    return analytics_csv_response(report, filename=csv_filename(report.query))


analytics_page_view = admin.site.admin_view(analytics_page)
analytics_csv_view = admin.site.admin_view(analytics_csv)
