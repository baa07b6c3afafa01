"""TenantScopeMixin: an operator of tenant A never sees, picks or touches tenant B's rows."""

from __future__ import annotations

import pytest
from django.contrib import admin

from apim.models import API, Membership, Tenant, Upstream
from consumers.models import APIKey, Application, Consumer, Subscription
from policies.models import PolicyAttachment
from tests.apim.admin.world import admin_url, login
from tests.factories import UserFactory, membership

# Personal access tokens belong to users, not tenants: their scoping is tested in test_access_token_admin.py.
SCOPED = [
    model
    for model in admin.site._registry
    if model._meta.app_label != "auth" and model._meta.model_name != "personalaccesstoken"
]
SCOPED_IDS = [model._meta.label for model in SCOPED]


def _b_object(world_b, model):
    if model is Membership:
        return Membership.objects.get(tenant=world_b.tenant)
    return world_b.objects()[model]


@pytest.fixture
def b_member(world_b):
    user = UserFactory(username="admin-b", is_staff=True)
    return membership(user=user, tenant=world_b.tenant, role="admin")


@pytest.mark.parametrize("model", SCOPED, ids=SCOPED_IDS)
def test_changelist_shows_only_own_tenant(model, world_a, world_b, b_member, admin_a, admin_a_client):
    response = admin_a_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert rows, f"admin of A should see A's {model._meta.verbose_name_plural}"
    tenant_ids = {row.pk if model is Tenant else row.tenant_id for row in rows}
    assert tenant_ids == {world_a.tenant.pk}


@pytest.mark.parametrize("model", SCOPED, ids=SCOPED_IDS)
@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_other_tenants_object_urls_are_404(model, view, world_a, world_b, b_member, admin_a_client):
    obj = _b_object(world_b, model)
    response = admin_a_client.get(admin_url(obj, view))
    assert response.status_code == 404


def test_superuser_sees_both_tenants(world_a, world_b, superuser_client):
    response = superuser_client.get(admin_url(API, "changelist"))
    assert {api.tenant_id for api in response.context["cl"].result_list} == {world_a.tenant.pk, world_b.tenant.pk}


def test_posting_a_change_to_another_tenants_object_is_404(world_a, world_b, admin_a_client):
    upstream = world_b.upstream
    response = admin_a_client.post(admin_url(upstream, "change"), {"name": "stolen", "load_balancing": "round_robin"})
    assert response.status_code == 404
    upstream.refresh_from_db()
    assert upstream.name == "b-upstream"


@pytest.mark.parametrize(
    ("model", "field", "own"),
    [
        pytest.param(API, "upstream", lambda w: w.upstream, id="api-upstream"),
        pytest.param(API, "tenant", lambda w: w.tenant, id="api-tenant"),
        pytest.param(APIKey, "application", lambda w: w.application, id="apikey-application"),
        pytest.param(APIKey, "allowed_apis", lambda w: w.api, id="apikey-allowed_apis"),
        pytest.param(Application, "consumer", lambda w: w.consumer, id="application-consumer"),
        pytest.param(Subscription, "plan", lambda w: w.plan, id="subscription-plan"),
        pytest.param(Subscription, "api", lambda w: w.api, id="subscription-api"),
        pytest.param(PolicyAttachment, "consumer", lambda w: w.consumer, id="policy-consumer"),
    ],
)
def test_add_form_choices_are_own_tenant_only(model, field, own, world_a, world_b, admin_a_client):
    response = admin_a_client.get(admin_url(model, "add"))
    assert response.status_code == 200
    choices = list(response.context["adminform"].form.fields[field].queryset)
    assert choices == [own(world_a)]


def test_single_tenant_is_preselected(world_a, world_b, admin_a_client):
    response = admin_a_client.get(admin_url(Upstream, "add"))
    assert response.context["adminform"].form.initial["tenant"] == world_a.tenant.pk


def test_api_with_another_tenants_upstream_is_a_form_error(world_a, world_b, admin_a_client):
    response = admin_a_client.post(
        admin_url(API, "add"),
        {
            "tenant": world_a.tenant.pk,
            "name": "sneaky",
            "version": "v1",
            "title": "Sneaky",
            "base_path": "/sneaky",
            "hosts": "[]",
            "upstream": world_b.upstream.pk,
            **_empty_inlines(),
        },
    )
    assert response.status_code == 200
    assert "upstream" in response.context["adminform"].form.errors
    assert not API.objects.filter(name="sneaky").exists()


def _empty_inlines() -> dict[str, str]:
    data = {}
    for prefix in ("routes", "policies"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return data


def test_autocomplete_offers_only_own_tenant(world_a, world_b, admin_a_client):
    response = admin_a_client.get(
        "/admin/autocomplete/",
        {"app_label": "apim", "model_name": "api", "field_name": "upstream", "term": "upstream"},
    )
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["a-upstream"]


def test_viewer_can_look_but_not_write(world_a, viewer_a_client):
    api = world_a.api
    assert viewer_a_client.get(admin_url(api, "change")).status_code == 200
    assert viewer_a_client.get(admin_url(API, "add")).status_code == 403
    response = viewer_a_client.post(admin_url(api, "change"), {"title": "Changed"})
    assert response.status_code == 403
    assert viewer_a_client.post(admin_url(API, "add"), {"name": "x"}).status_code == 403
    assert viewer_a_client.post(admin_url(api, "delete"), {"post": "yes"}).status_code == 403
    api.refresh_from_db()
    assert api.title == "A-Api"


def test_staff_without_membership_sees_no_apim_models(world_a, stranger):
    response = login(stranger).get("/admin/")
    assert response.status_code == 200
    assert response.context["app_list"] == []
    assert login(stranger).get(admin_url(API, "changelist")).status_code == 403


def test_tenant_admin_cannot_add_or_delete_tenants_and_only_views_memberships(world_a, admin_a, admin_a_client):
    assert admin_a_client.get(admin_url(Tenant, "add")).status_code == 403
    assert admin_a_client.get(admin_url(world_a.tenant, "delete")).status_code == 403
    assert admin_a_client.get(admin_url(Membership, "add")).status_code == 403
    assert admin_a_client.get(admin_url(world_a.tenant, "change")).status_code == 200


def test_owner_adds_a_member_by_username_without_seeing_other_accounts(world_a, owner_a_client):
    newcomer = UserFactory(username="newcomer", is_staff=True)
    page = owner_a_client.get(admin_url(Membership, "add"))
    assert "stranger" not in page.content.decode() and '<select name="user"' not in page.content.decode()
    response = owner_a_client.post(
        admin_url(Membership, "add"), {"tenant": world_a.tenant.pk, "user": "newcomer", "role": "viewer"}
    )
    assert response.status_code == 302
    assert Membership.objects.get(user=newcomer).tenant == world_a.tenant


def test_user_admin_is_superuser_only(world_a, admin_a, admin_a_client, superuser_client):
    assert admin_a_client.get(admin_url(admin_a, "change")).status_code == 403
    assert superuser_client.get(admin_url(admin_a, "change")).status_code == 200


def test_consumer_list_filter_names_no_other_tenant(world_a, world_b, admin_a_client):
    body = admin_a_client.get(admin_url(Consumer, "changelist")).content.decode()
    assert "a-consumer" in body
    assert world_b.tenant.slug + "</a>" not in body and "b-consumer" not in body
