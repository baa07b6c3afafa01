"""``manage.py seed_demo``: a working demo on an empty install (``make run`` calls it).

Creates, through the services (so everything is validated and audited): the
tenant ``demo`` serving localhost and unmatched hosts, its owner ``admin`` (a
staff user, not a superuser), an upstream ``echo`` pointing at the web
process's built-in echo endpoint, the published API ``echo`` v1 at ``/echo``,
a consumer with an application, a plan with an active subscription, key
authentication on the API, and one API key. All of it in one transaction: a half-seeded demo is worse than none.

The admin password and the key are printed once, after commit: they are
stored only as hashes, and printing before commit could show a key that a
failed commit never stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from apim.management.base import ServiceCommand
from apim.models import Tenant
from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create_with_admin
from consumers.services import api_key_issue, application_create, consumer_create, plan_create, subscription_create
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class Seeded:
    password: str | None  # None: the admin user already existed and kept its password
    key_plaintext: str
    key_prefix: str

    def __repr__(self) -> str:  # keep secrets out of tracebacks
        return f"Seeded(key_prefix={self.key_prefix!r})"


def echo_upstream_url() -> str:
    """The web process's built-in echo endpoint (``apim/echo.py``), as the gateway will reach it."""
    return f"http://127.0.0.1:{settings.APIM_WEB_PORT}/_demo/echo"


@transaction.atomic
def seed() -> Seeded:
    existing_admin = get_user_model().objects.filter(username=ADMIN_USERNAME).exists()
    password = secrets.token_urlsafe(18)
    tenant, admin = tenant_create_with_admin(
        slug="demo",
        name="Demo",
        username=ADMIN_USERNAME,
        email="admin@example.com",
        password=password,
        hosts=["localhost"],
        is_default=True,
        actor=None,
    )
    upstream = upstream_create(
        tenant=tenant,
        name="echo",
        description="The web process's built-in echo endpoint.",
        targets=[echo_upstream_url()],
        actor=admin,
    )
    api = api_create(
        tenant=tenant,
        name="echo",
        title="Echo",
        version="v1",
        description="Answers with the request it received.",
        base_path="/echo",
        upstream=upstream,
        actor=admin,
    )
    api_publish(api=api, actor=admin)
    consumer = consumer_create(tenant=tenant, name="demo-consumer", organization="Demo Inc.", actor=admin)
    application = application_create(consumer=consumer, name="demo-app", actor=admin)
    plan = plan_create(
        tenant=tenant,
        name="demo",
        description="10 requests a second, 1000 a day.",
        rate_limit_per_second=10,
        quota_per_day=1000,
        actor=admin,
    )
    subscription_create(application=application, api=api, plan=plan, actor=admin)
    # The demo API takes keys: the plan's limits then apply to the demo key's subscription.
    policy_attachment_save(
        attachment=PolicyAttachment(tenant=tenant, api=api, policy="key-auth", config={}), actor=admin
    )
    issued = api_key_issue(application=application, name="demo key", actor=admin)
    return Seeded(
        password=None if existing_admin else password,
        key_plaintext=issued.plaintext,
        key_prefix=issued.key.prefix,
    )


class Command(ServiceCommand):
    help = "Create the demo tenant, admin, echo API, consumer, application, plan, subscription and key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if any tenant exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Tenant.objects.exists():
            self.say("Demo not seeded: the database already has tenants.")
            return
        seeded = seed()
        web = f"http://127.0.0.1:{settings.APIM_WEB_PORT}"
        gateway = f"http://127.0.0.1:{settings.APIM_GATEWAY_PORT}"
        if seeded.password is None:
            login = f"{ADMIN_USERNAME} (existing user; password unchanged)"
        else:
            login = f"{ADMIN_USERNAME} / {seeded.password}   (shown once; reset: manage.py changepassword admin)"
        self.success("Demo seeded: tenant 'demo' serving localhost.")
        self.say(f"  Admin console : {web}/admin/")
        self.say(f"  Login         : {login}")
        self.say(f"  Demo API key  : {seeded.key_plaintext}   (shown once; listed as {seeded.key_prefix})")
        self.say(f"  Echo upstream : {echo_upstream_url()}/hello")
        self.say(f"  Gateway       : {gateway}   (the demo API: {gateway}/echo/)")
        self.say(f"  Try it        : curl -H 'X-API-Key: {seeded.key_plaintext}' {gateway}/echo/hello")
