"""The console's analytics page and its CSV export: tenant scoping, filters, data handed to the charts."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest

from tests.analytics.rollup_rows import recent_hour, rollup
from tests.factories import ApiFactory, ConsumerFactory, TenantFactory, UserFactory, membership

PAGE = "/admin/analytics/"
EXPORT = "/admin/analytics/export.csv"


def _report(response):
    match = re.search(r'<script id="analytics-data" type="application/json">(.*?)</script>', response.content.decode())
    assert match, "the page carries no chart data"
    return json.loads(match.group(1))


@pytest.fixture
def traffic(db):
    """Tenants A and B, each with one API, one consumer and an hour of traffic in the default range."""
    out = {}
    for slug, requests in (("alpha", 11), ("beta", 500)):
        tenant = TenantFactory(slug=slug)
        api = ApiFactory(tenant=tenant, name=f"{slug}-orders")
        consumer = ConsumerFactory(tenant=tenant, name=f"{slug}-partner")
        rollup(
            "hour",
            bucket_start=recent_hour(2),
            tenant=tenant,
            requests=requests,
            errors=2,
            api_id=api.pk,
            consumer_id=consumer.pk,
            deny_reason="rate_limited",
        )
        out[slug] = {"tenant": tenant, "api": api, "consumer": consumer, "requests": requests}
    return out


def _operator(tenant, role="admin"):
    user = UserFactory(is_staff=True)
    membership(user=user, tenant=tenant, role=role)
    return user


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_member_sees_own_tenant(client, traffic, role):
    client.force_login(_operator(traffic["alpha"]["tenant"], role))
    response = client.get(PAGE)
    assert response.status_code == 200
    report = _report(response)
    assert report["query"]["tenant"] == "alpha"
    assert report["totals"]["requests"] == 11
    assert [row["name"] for row in report["top_apis"]] == ["alpha-orders v1"]
    assert [row["name"] for row in report["top_consumers"]] == ["alpha-partner"]
    html = response.content.decode()
    for canvas in ("requests", "error-rate", "latency", "top-apis", "top-consumers", "deny-reasons"):
        assert f'id="chart-{canvas}"' in html
    assert "beta" not in html  # neither B's slug nor its names
    assert "vendor/chartjs/chart.umd.min.js" in html and "cdn" not in html.lower()
    # Chart data goes through json_script; the page has no inline script to run.
    assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", html)


def test_other_tenant_is_not_found_and_nothing_leaks(client, traffic):
    client.force_login(_operator(traffic["alpha"]["tenant"]))
    assert client.get(PAGE, {"tenant": "beta"}).status_code == 404
    assert client.get(EXPORT, {"tenant": "beta"}).status_code == 404
    assert client.get(PAGE, {"tenant": "nope"}).status_code == 404
    # B's API id as a filter inside A is not a valid choice: refused, never answered.
    refused = client.get(PAGE, {"tenant": "alpha", "api": str(traffic["beta"]["api"].pk)})
    assert refused.status_code == 400
    assert "analytics-data" not in refused.content.decode()
    assert client.get(EXPORT, {"tenant": "alpha", "api": str(traffic["beta"]["api"].pk)}).status_code == 400


def test_developers_and_outsiders_are_refused(client, traffic):
    client.force_login(_operator(traffic["alpha"]["tenant"], "developer"))
    assert client.get(PAGE).status_code == 403
    client.force_login(UserFactory(is_staff=True))
    assert client.get(PAGE).status_code == 403
    client.force_login(UserFactory(is_staff=False))
    assert client.get(PAGE).status_code == 302  # the admin's login page


def test_superuser_chooses_a_tenant(client, traffic):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(PAGE)
    assert response.status_code == 200
    assert 'id="analytics-choose-tenant"' in response.content.decode()
    assert "analytics-data" not in response.content.decode()
    assert _report(client.get(PAGE, {"tenant": "beta"}))["totals"]["requests"] == 500
    assert _report(client.get(PAGE, {"tenant": "alpha"}))["totals"]["requests"] == 11


def test_member_of_two_tenants_chooses(client, traffic):
    user = _operator(traffic["alpha"]["tenant"])
    membership(user=user, tenant=traffic["beta"]["tenant"], role="viewer")
    client.force_login(user)
    assert "analytics-data" not in client.get(PAGE).content.decode()
    assert _report(client.get(PAGE, {"tenant": "beta"}))["totals"]["requests"] == 500


def test_filters_and_time_range(client, traffic):
    alpha = traffic["alpha"]
    client.force_login(_operator(alpha["tenant"]))
    t = recent_hour(2)
    rollup("minute", bucket_start=t + timedelta(minutes=1), tenant=alpha["tenant"], requests=4, api_id=alpha["api"].pk)
    rollup("minute", bucket_start=t + timedelta(minutes=2), tenant=alpha["tenant"], requests=6)
    window = {"start": t.strftime("%Y-%m-%dT%H:%M"), "end": (t + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")}
    report = _report(client.get(PAGE, window))
    assert report["query"]["granularity"] == "minute" and report["query"]["points"] == 10
    assert [p["requests"] for p in report["series"]][:3] == [0, 4, 6]
    assert _report(client.get(PAGE, {**window, "api": str(alpha["api"].pk)}))["totals"]["requests"] == 4
    assert _report(client.get(PAGE, {"range": "7d"}))["query"]["granularity"] == "hour"
    assert _report(client.get(PAGE, {"range": "90d"}))["query"]["granularity"] == "day"
    too_many = client.get(PAGE, {"range": "7d", "granularity": "minute"})
    assert too_many.status_code == 400
    assert "granularity=hour" in too_many.content.decode()
    assert client.get(PAGE, {"range": "forever"}).status_code == 400


def test_csv_export_is_the_same_query(client, traffic):
    alpha = traffic["alpha"]
    alpha["consumer"].name = "@SUM(A1)"
    alpha["consumer"].save()
    client.force_login(_operator(alpha["tenant"]))
    page = client.get(PAGE, {"range": "24h", "consumer": str(alpha["consumer"].pk)})
    link = re.search(r'href="([^"]+)" id="analytics-csv"', page.content.decode()).group(1).replace("&amp;", "&")
    assert link.startswith(EXPORT) and "range=24h" in link and "tenant=alpha" in link and "consumer=" in link
    response = client.get(link)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    report = _report(page)
    assert [r["requests"] for r in rows if r["section"] == "series"] == [str(p["requests"]) for p in report["series"]]
    assert [r["name"] for r in rows if r["section"] == "top_consumer"] == ["'@SUM(A1)"]
    assert [r["requests"] for r in rows if r["section"] == "totals"] == ["11"]


def test_index_and_sidebar_link_to_the_page(client, traffic):
    client.force_login(_operator(traffic["alpha"]["tenant"]))
    assert 'href="/admin/analytics/"' in client.get("/admin/").content.decode()
    # Any other admin page has the sidebar.
    assert 'href="/admin/analytics/"' in client.get("/admin/apim/api/").content.decode()


def test_the_link_is_not_shown_to_whom_the_page_would_refuse(client, traffic):
    client.force_login(_operator(traffic["alpha"]["tenant"], "developer"))
    index = client.get("/admin/")
    assert index.status_code == 200
    assert 'href="/admin/analytics/"' not in index.content.decode()
    client.force_login(UserFactory(is_staff=True))  # staff without any membership
    assert 'href="/admin/analytics/"' not in client.get("/admin/").content.decode()
