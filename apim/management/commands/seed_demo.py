"""``manage.py seed_demo``: a working demo on an empty install (``make run`` calls it).

Creates, through the services (so everything is validated and audited): the
tenant ``demo`` serving localhost and unmatched hosts, its owner ``admin``, an
upstream ``echo`` pointing at the web process's built-in echo endpoint, the
published API ``echo`` at ``/echo``, a consumer with an application, a plan
with an active subscription, and one API key. The admin password and the key
are printed once: they are stored only as hashes.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import transaction

from apim.management.base import ServiceCommand, run_service
from apim.models import Tenant
from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create_with_admin
from consumers.services import api_key_issue, application_create, consumer_create, plan_create, subscription_create


class Command(ServiceCommand):
    help = "Create the demo tenant, admin, echo API, consumer, application, plan, subscription and key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if any tenant exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        if Tenant.objects.exists():
            if options["if_empty"]:
                self.say("Demo not seeded: the database already has tenants.")
                return
            if Tenant.objects.filter(slug="demo").exists():
                self.say("The demo tenant already exists; nothing to do.")
                return
        password = secrets.token_urlsafe(12)
        plaintext, key_prefix = run_service(lambda: self._seed(password))
        web = f"http://127.0.0.1:{settings.APIM_WEB_PORT}"
        gateway = f"http://127.0.0.1:{settings.APIM_GATEWAY_PORT}"
        self.say("Demo seeded.", self.style.SUCCESS)
        self.say(f"  Admin console : {web}/admin/")
        self.say(f"  Login         : admin / {password}   (shown once; reset: manage.py changepassword admin)")
        self.say(f"  Demo API key  : {plaintext}   (shown once; prefix {key_prefix})")
        self.say(f"  Echo upstream : {web}/_demo/echo/")
        self.say(f"  Try it        : curl -H 'X-API-Key: {plaintext}' {gateway}/echo/hello")

    @transaction.atomic
    def _seed(self, password: str) -> tuple[str, str]:
        tenant, admin = tenant_create_with_admin(
            slug="demo",
            name="Demo",
            username="admin",
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
            targets=[f"http://127.0.0.1:{settings.APIM_WEB_PORT}/_demo/echo"],
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
        plan = plan_create(tenant=tenant, name="demo", rate_limit_per_second=10, quota_per_day=1000, actor=admin)
        subscription_create(application=application, api=api, plan=plan, actor=admin)
        issued = api_key_issue(application=application, name="demo key", actor=admin)
        return issued.plaintext, issued.key.prefix
