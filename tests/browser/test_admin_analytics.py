"""End to end in a real browser: a tenant operator opens the analytics page and sees the charts drawn.

Drives Debian's Chromium through Playwright's sync API against ``live_server``
(static files served by the test server: the vendored Chart.js, no CDN).
Checks what a user would: every chart's canvas exists and Chart.js drew it with
the data of the tenant's rollups, and the console stayed free of errors.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.analytics.rollup_rows import hist, recent_hour, rollup
from tests.browser.test_admin_key_issue import (  # noqa: F401 - fixtures
    _allow_orm_beside_playwright,
    browser,
)
from tests.factories import PASSWORD, ApiFactory, ConsumerFactory, TenantFactory, UserFactory, membership

SCREENSHOT = Path("/tmp/apim-admin-analytics.png")
CHARTS = ("requests", "error-rate", "latency", "top-apis", "top-consumers", "deny-reasons")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _note_console_error(problems: list[str], message) -> None:  # type: ignore[no-untyped-def]
    """Console errors, except Chromium's own favicon probe (the project serves no /favicon.ico)."""
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        problems.append(f"{message.text} at {message.location.get('url')}")


STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"


def _strict_csp(served: list[str]):  # type: ignore[no-untyped-def]
    def handle(route) -> None:  # type: ignore[no-untyped-def]
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})
        served.append(route.request.url)

    return handle


def test_operator_sees_analytics_charts(browser, live_server):  # noqa: F811 - the fixture
    tenant = TenantFactory(slug="acme")
    other = TenantFactory(slug="globex")
    orders = ApiFactory(tenant=tenant, name="orders")
    billing = ApiFactory(tenant=tenant, name="billing")
    partner = ConsumerFactory(tenant=tenant, name="partner")
    start = recent_hour(5)
    for hour, (api, requests, errors) in enumerate([(orders, 120, 3), (billing, 40, 10), (orders, 80, 0)]):
        rollup(
            "hour",
            bucket_start=start + timedelta(hours=hour),
            tenant=tenant,
            requests=requests,
            errors=errors,
            api_id=api.pk,
            consumer_id=partner.pk,
            latency_hist=hist(b4=requests // 2, b10=requests - requests // 2),
        )
    rollup("hour", bucket_start=start, tenant=tenant, requests=9, errors=9, deny_reason="rate_limited", status_class=4)
    rollup("hour", bucket_start=start, tenant=other, requests=99999, api_id=ApiFactory(tenant=other).pk)
    user = UserFactory(username="ops", is_staff=True)
    membership(user=user, tenant=tenant, role="viewer")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda message: _note_console_error(problems, message))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    # Serve the analytics page under a strict CSP: no inline script, no eval. A violation is a console error.
    csp_served: list[str] = []
    page.route("**/admin/analytics/?*", _strict_csp(csp_served))
    page.route("**/admin/analytics/", _strict_csp(csp_served))

    page.click("#nav-analytics-link")  # from the index page's module
    page.wait_for_selector("body[data-analytics-drawn=true]")
    drawn = page.evaluate(
        """(ids) => ids.map((id) => {
            const chart = window.Chart.getChart(document.getElementById("chart-" + id));
            return chart ? {id, labels: chart.data.labels.length,
                            sums: chart.data.datasets.map((d) => d.data.reduce((a, b) => a + (b || 0), 0)),
                            width: chart.width, height: chart.height} : {id, missing: true};
        })""",
        list(CHARTS),
    )
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    by_id = {chart["id"]: chart for chart in drawn}
    assert all(not chart.get("missing") for chart in drawn), drawn
    assert all(chart["width"] > 100 and chart["height"] > 100 for chart in drawn), drawn
    assert by_id["requests"]["labels"] == 25  # the last 24 hours, hourly
    assert by_id["requests"]["sums"] == [249, 22]  # acme only: globex's 99999 never shows
    assert by_id["top-apis"]["labels"] == 2 and by_id["top-apis"]["sums"] == [240, 13]
    assert by_id["top-consumers"]["sums"] == [240, 13]
    assert by_id["deny-reasons"]["sums"] == [9, 9]
    assert all(value > 0 for value in by_id["latency"]["sums"])
    assert by_id["error-rate"]["sums"][0] > 0
    assert "globex" not in page.content()
    inline = "script:not([src]):not([type='application/json'])"
    assert page.evaluate("(selector) => document.querySelectorAll(selector).length", inline) == 0
    assert not problems, problems

    page.click("#analytics-csv")  # a download, not a navigation: the page stays
    page.select_option("#id_range", "7d")
    page.click("#analytics-filters input[type=submit]")
    page.wait_for_selector("body[data-analytics-drawn=true]")
    assert page.evaluate("window.Chart.getChart(document.getElementById('chart-requests')).data.labels.length") > 25
    assert not problems, problems
    assert len(csp_served) == 2, csp_served
    page.close()
