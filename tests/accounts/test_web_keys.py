"""The browser pages: logging in and out, and the API keys page (create once, list, revoke)."""

import datetime
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.keys import KEY_LENGTH, KEY_PREFIX, key_hash, key_is_well_formed
from accounts.models import ApiKey
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db

# A whole key, not the shorter `display` form (prefix…last four) that the list shows.
KEY_PATTERN = re.compile(
    rf"{re.escape(KEY_PREFIX)}[0-9A-Za-z]{{{KEY_LENGTH - len(KEY_PREFIX)}}}(?![0-9A-Za-z])"
)


def _keys_in(html: str) -> list[str]:
    return KEY_PATTERN.findall(html)


def test_login_with_the_right_password_signs_in_and_goes_to_the_keys_page(client, alice):
    response = client.post(
        reverse("login"), {"username": "alice", "password": "alice-pass-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("api-keys")
    assert response.status_code == 200
    assert int(client.session["_auth_user_id"]) == alice.pk


def test_login_with_a_wrong_password_does_not_sign_in(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "bob-pass-1"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_post_only_and_signs_out(client, alice):
    client.force_login(alice)
    assert client.get(reverse("logout")).status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


def test_the_keys_page_needs_login(client):
    response = client.get(reverse("api-keys"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse('api-keys')}"


def test_the_keys_page_lists_own_keys_with_their_status(client, alice):
    now = timezone.now()
    active, _ = api_key_create(owner=alice, name="laptop")
    expired, _ = api_key_create(owner=alice, name="old", expires=now - datetime.timedelta(days=1))
    client.force_login(alice)
    html = client.get(reverse("api-keys")).content.decode()
    assert active.display in html
    assert expired.display in html
    assert 'class="status-active">active<' in html
    assert 'class="status-expired">expired<' in html


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(client, alice):
    client.force_login(alice)
    before = timezone.now()
    response = client.post(reverse("api-keys"), {"name": "laptop", "expires_in_days": "30"})
    assert response.status_code == 200
    # The page showing the key must not be kept by any cache.
    assert "no-store" in response["Cache-Control"]
    shown = _keys_in(response.content.decode())
    assert len(shown) == 1
    key = shown[0]
    assert key_is_well_formed(key)

    api_key = ApiKey.objects.get(owner=alice)
    assert api_key.name == "laptop"
    assert api_key.hashed_key == key_hash(key)
    assert api_key.display in response.content.decode()
    expected_expiry = before + datetime.timedelta(days=30)
    assert abs(api_key.expires - expected_expiry) < datetime.timedelta(minutes=1)
    for field in ApiKey._meta.concrete_fields:
        assert key not in str(getattr(api_key, field.attname))

    # Neither the session nor a reload of the page has it.
    assert all(key not in str(value) for value in client.session.values())
    reloaded = client.get(reverse("api-keys")).content.decode()
    assert key not in reloaded
    assert _keys_in(reloaded) == []
    assert api_key.display in reloaded


def test_a_key_without_expiry_never_expires(client, alice):
    client.force_login(alice)
    client.post(reverse("api-keys"), {"name": ""})
    assert ApiKey.objects.get(owner=alice).expires is None


@pytest.mark.parametrize("days", ["0", "3651", "-5", "soon"])
def test_an_out_of_range_expiry_creates_no_key(client, alice, days):
    client.force_login(alice)
    response = client.post(reverse("api-keys"), {"name": "bad", "expires_in_days": days})
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert _keys_in(response.content.decode()) == []
    assert not ApiKey.objects.filter(owner=alice).exists()


def test_revoking_a_key(client, alice):
    api_key, key = api_key_create(owner=alice, name="laptop")
    client.force_login(alice)
    response = client.post(reverse("api-key-revoke", args=[api_key.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("api-keys")
    api_key.refresh_from_db()
    assert api_key.revoked is not None
    html = client.get(reverse("api-keys")).content.decode()
    assert 'class="status-revoked">revoked<' in html
    assert key not in html


def test_revoking_needs_post(client, alice):
    api_key, _ = api_key_create(owner=alice)
    client.force_login(alice)
    assert client.get(reverse("api-key-revoke", args=[api_key.pk])).status_code == 405
    api_key.refresh_from_db()
    assert api_key.revoked is None


def test_revoking_is_csrf_protected(alice):
    api_key, _ = api_key_create(owner=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    url = reverse("api-key-revoke", args=[api_key.pk])

    assert client.post(url).status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked is None

    # With the token the page hands out, the same request goes through.
    client.get(reverse("api-keys"))
    token = client.cookies["csrftoken"].value
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked is not None


def test_creating_a_key_is_csrf_protected(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("api-keys"), {"name": "forged"}).status_code == 403
    assert not ApiKey.objects.filter(owner=alice).exists()


def test_bob_can_neither_see_nor_revoke_alices_key(client, alice, bob):
    api_key, _ = api_key_create(owner=alice, name="alice-laptop")
    client.force_login(bob)
    html = client.get(reverse("api-keys")).content.decode()
    assert api_key.display not in html
    assert "alice-laptop" not in html

    response = client.post(reverse("api-key-revoke", args=[api_key.pk]))
    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked is None


def test_anonymous_revoke_goes_to_login_and_revokes_nothing(client, alice):
    api_key, _ = api_key_create(owner=alice)
    response = client.post(reverse("api-key-revoke", args=[api_key.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    api_key.refresh_from_db()
    assert api_key.revoked is None
