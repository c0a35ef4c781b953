"""A cap on the active API keys one user may have (API_KEYS_PER_USER_MAX): the service refuses
one more with a domain error, the keys page shows it, `manage.py createapikey` fails with it;
revoked and expired keys do not count, and the cap holds for the admin too."""

import datetime
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts.errors import ApiKeyLimitReached
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from api.error_map import openai_error_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cap(settings) -> None:
    settings.API_KEYS_PER_USER_MAX = 3


def test_the_service_refuses_a_key_past_the_cap(alice, bob):
    for index in range(3):
        api_key_create(owner=alice, name=f"k{index}")
    with pytest.raises(ApiKeyLimitReached) as caught:
        api_key_create(owner=alice, name="one too many")
    assert "3 active API keys" in caught.value.message
    assert ApiKey.objects.filter(owner=alice).count() == 3
    # the cap is per user: bob is not affected
    api_key_create(owner=bob)
    # and the API would answer it as a conflict, with its own code
    error = openai_error_of(caught.value)
    assert (error.status, error.code) == (409, "api_key_limit_reached")


def test_revoked_and_expired_keys_do_not_count(alice):
    first, _ = api_key_create(owner=alice)
    second, _ = api_key_create(owner=alice)
    api_key_create(owner=alice)
    api_key_revoke(api_key=first)
    second.expires = timezone.now() - datetime.timedelta(days=1)
    second.save(update_fields=["expires"])
    api_key_create(owner=alice)
    api_key_create(owner=alice)
    with pytest.raises(ApiKeyLimitReached):
        api_key_create(owner=alice)


def test_the_cap_holds_for_the_admin_too(django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-pass-1")
    for _ in range(3):
        api_key_create(owner=admin)
    with pytest.raises(ApiKeyLimitReached):
        api_key_create(owner=admin)


def test_zero_means_no_cap(settings, alice):
    settings.API_KEYS_PER_USER_MAX = 0
    for _ in range(12):
        api_key_create(owner=alice)
    assert ApiKey.objects.filter(owner=alice).count() == 12


def test_the_keys_page_shows_the_refusal_and_creates_nothing(client, alice):
    client.force_login(alice)
    for index in range(3):
        assert client.post(reverse("api-keys"), {"name": f"k{index}"}).status_code == 200
    response = client.post(reverse("api-keys"), {"name": "one too many"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "3 active API keys" in html
    assert "revoke one" in html
    assert not re.search(r"sk-csm-[A-Za-z0-9]{20,}", html)
    assert ApiKey.objects.filter(owner=alice).count() == 3
    # and the page says how many may be had
    assert "3 of at most 3 active keys" in client.get(reverse("api-keys")).content.decode()


def test_createapikey_fails_with_a_clear_error(alice):
    for _ in range(3):
        call_command("createapikey", "alice", stdout=io.StringIO())
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("createapikey", "alice", stdout=out)
    assert "API_KEYS_PER_USER_MAX=3" in str(caught.value)
    assert "sk-csm-" not in out.getvalue()
    assert ApiKey.objects.filter(owner=alice).count() == 3
