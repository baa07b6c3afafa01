"""End to end in a real browser: a tenant admin issues an API key in the console.

Drives Debian's Chromium through Playwright's sync API against
``live_server``. Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections

from consumers.selectors import api_key_verify
from tests.factories import PASSWORD, ApiFactory, ApplicationFactory, TenantFactory, UserFactory, membership

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/apim-admin-key.png")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _allow_orm_beside_playwright(monkeypatch):
    """Sync Playwright runs an event loop in this thread, and Django refuses ORM
    calls from a thread with a running loop unless told it is deliberate. Set
    for this module's tests only: left in ``os.environ`` it would leak into
    every later test (and trip the deployment check's async.E001)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("APIM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"APIM_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection;
        # close it, or PostgreSQL refuses to drop the test database at the end.
        connections.close_all()


def test_tenant_admin_issues_a_key_and_sees_it_once(browser, live_server):
    tenant = TenantFactory(slug="acme")
    application = ApplicationFactory(consumer__tenant=tenant, consumer__name="partner", name="checkout")
    ApiFactory(tenant=tenant, name="orders")
    user = UserFactory(username="ops", is_staff=True)
    membership(user=user, tenant=tenant, role="admin")

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(f"{live_server.url}/admin/consumers/apikey/add/")
    page.select_option("#id_application", str(application.pk))
    page.fill("#id_name", "ci pipeline")
    page.fill("#id_scopes", '["orders:read"]')
    page.click("input[name=_save]")

    code = page.wait_for_selector("code.apim-key-plaintext")
    plaintext = code.inner_text().strip()
    assert "will not be shown again" in page.content()
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    check = api_key_verify(tenant=tenant, plaintext=plaintext)
    assert check.ok, check.reason
    assert check.key.name == "ci pipeline"

    page.goto(f"{live_server.url}/admin/consumers/apikey/")
    listing = page.content()
    assert check.key.prefix in listing
    assert plaintext not in listing
    page.close()
