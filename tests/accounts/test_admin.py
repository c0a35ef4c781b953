"""The accounts admin: API keys without their hashes, the revoke action, read-only usage."""

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.models import ApiKey, Usage
from accounts.services import api_key_create, usage_record

pytestmark = pytest.mark.django_db


def test_the_admin_is_mounted_at_admin_url(admin_client):
    assert reverse("admin:index") == f"/{settings.ADMIN_URL}"
    assert admin_client.get(reverse("admin:index")).status_code == 200


def test_the_admin_refuses_non_staff(client, bob):
    client.force_login(bob)
    response = client.get(reverse("admin:accounts_apikey_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_no_admin_page_shows_a_keys_hash_or_plaintext(admin_client, alice):
    api_key, key = api_key_create(owner=alice, name="laptop")
    pages = [
        reverse("admin:accounts_apikey_changelist"),
        reverse("admin:accounts_apikey_changelist") + f"?q={api_key.prefix}",
        reverse("admin:accounts_apikey_change", args=[api_key.pk]),
        reverse("admin:accounts_apikey_history", args=[api_key.pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert api_key.prefix in html, url
        assert api_key.hashed_key not in html, url
        assert key not in html, url
    change_form = admin_client.get(pages[2]).context["adminform"].form
    assert "hashed_key" not in change_form.fields
    # Keys are revoked, never deleted (their usage rows keep pointing at them).
    delete_page = reverse("admin:accounts_apikey_delete", args=[api_key.pk])
    assert admin_client.get(delete_page).status_code == 403


def test_the_key_changelist_searches_by_prefix_name_and_owner(admin_client, alice, bob):
    alices, _ = api_key_create(owner=alice, name="laptop")
    bobs, _ = api_key_create(owner=bob, name="server")
    url = reverse("admin:accounts_apikey_changelist")
    for term, found, hidden in [
        (alices.prefix, alices, bobs),
        ("server", bobs, alices),
        ("alice", alices, bobs),
    ]:
        listed = list(admin_client.get(url, {"q": term}).context["cl"].result_list)
        assert found in listed
        assert hidden not in listed


def test_keys_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:accounts_apikey_add")).status_code == 403


def test_the_revoke_action_revokes_only_the_selected_keys(admin_client, alice):
    chosen, _ = api_key_create(owner=alice, name="chosen")
    other, _ = api_key_create(owner=alice, name="other")
    response = admin_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [chosen.pk]},
    )
    assert response.status_code == 302
    chosen.refresh_from_db()
    other.refresh_from_db()
    assert chosen.revoked is not None
    assert other.revoked is None


def test_the_status_filter_tells_active_from_revoked(admin_client, alice):
    active, _ = api_key_create(owner=alice, name="active")
    revoked, _ = api_key_create(owner=alice, name="revoked")
    admin_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [revoked.pk]},
    )
    url = reverse("admin:accounts_apikey_changelist")
    assert list(admin_client.get(url, {"status": "active"}).context["cl"].result_list) == [active]
    assert list(admin_client.get(url, {"status": "revoked"}).context["cl"].result_list) == [revoked]


def test_the_usage_admin_lists_rows_and_is_read_only(admin_client, alice, bob):
    api_key, key = api_key_create(owner=alice, name="laptop")
    usage_record(user=alice, api_key=api_key, input_characters=120, audio_seconds=7.5)
    usage_record(user=bob, api_key=None, input_characters=40, audio_seconds=2.0)
    alices = Usage.objects.get(user=alice)

    response = admin_client.get(reverse("admin:accounts_usage_changelist"))
    assert response.status_code == 200
    listed = list(response.context["cl"].result_list)
    assert {usage.user.username for usage in listed} == {"alice", "bob"}
    html = response.content.decode()
    assert "7.5" in html
    assert api_key.display in html
    assert key not in html
    assert api_key.hashed_key not in html

    by_user = admin_client.get(
        reverse("admin:accounts_usage_changelist"), {"user__id__exact": alice.pk}
    )
    assert list(by_user.context["cl"].result_list) == [alices]

    assert admin_client.get(reverse("admin:accounts_usage_add")).status_code == 403
    change_url = reverse("admin:accounts_usage_change", args=[alices.pk])
    assert admin_client.post(change_url, {"requests": "999"}).status_code == 403
    alices.refresh_from_db()
    assert alices.requests == 1
    assert (
        admin_client.post(
            reverse("admin:accounts_usage_delete", args=[alices.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert Usage.objects.filter(pk=alices.pk).exists()
    assert ApiKey.objects.filter(pk=api_key.pk).exists()
