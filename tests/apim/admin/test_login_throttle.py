"""Admin sign-in: failed passwords are counted per name and per address; past the limit, 429 without a check."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def staff_user():
    user = UserFactory(is_staff=True, username="ops")
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_right_password_still_signs_in(staff_user):
    response = sign_in(Client(), "ops", PASSWORD)
    assert response.status_code == 302


def test_after_the_limit_even_the_right_password_gets_429(staff_user, settings):
    settings.APIM_LOGIN_MAX_FAILURES_PER_USER = 3
    client = Client()
    for _ in range(3):
        assert sign_in(client, "ops", "wrong").status_code == 200  # the form again, with its error
    refused = sign_in(client, "ops", PASSWORD)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= settings.APIM_LOGIN_FAILURE_WINDOW + 1
    assert "Too many failed sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # not signed in
    # From another address too: the count is per user name.
    assert sign_in(Client(), "OPS", PASSWORD, ip="10.0.0.2").status_code == 429


def test_a_success_clears_the_count(staff_user, settings):
    settings.APIM_LOGIN_MAX_FAILURES_PER_USER = 3
    for _ in range(2):
        sign_in(Client(), "ops", "wrong")
    assert sign_in(Client(), "ops", PASSWORD).status_code == 302
    for _ in range(2):
        assert sign_in(Client(), "ops", "wrong").status_code == 200
    assert sign_in(Client(), "ops", PASSWORD).status_code == 302


def test_one_address_guessing_many_names_is_stopped(staff_user, settings):
    settings.APIM_LOGIN_MAX_FAILURES_PER_IP = 5
    for i in range(5):
        assert sign_in(Client(), f"user{i}", "wrong", ip="10.9.9.9").status_code == 200
    assert sign_in(Client(), "ops", PASSWORD, ip="10.9.9.9").status_code == 429
    assert sign_in(Client(), "ops", PASSWORD, ip="10.9.9.10").status_code == 302  # others unaffected


def test_the_window_expires(staff_user, settings, monkeypatch):
    import apim.admin.login_throttle as throttle

    settings.APIM_LOGIN_MAX_FAILURES_PER_USER = 2
    now = [1_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])
    for _ in range(2):
        sign_in(Client(), "ops", "wrong")
    assert sign_in(Client(), "ops", PASSWORD).status_code == 429
    now[0] += settings.APIM_LOGIN_FAILURE_WINDOW + 1
    assert sign_in(Client(), "ops", PASSWORD).status_code == 302
