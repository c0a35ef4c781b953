"""Sign-in throttling: the login page and the admin's share one per-username-and-address limit."""

import pytest
from django.urls import reverse

from accounts.login_throttle import username_canonical

pytestmark = pytest.mark.django_db

LOGIN_PAGES = [reverse("login"), reverse("admin:login")]


@pytest.fixture(autouse=True)
def _small_limit(settings) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600


def _sign_in(client, url: str, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _errors(response) -> list[str]:
    return list(response.context["form"].non_field_errors())


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_after_the_limit_even_the_right_password_is_refused(client, carol, url):
    for _ in range(3):
        response = _sign_in(client, url, "carol", "wrong")
        assert response.status_code == 200
        assert not any("Too many attempts" in e for e in _errors(response))
    response = _sign_in(client, url, "carol", "carol-pass-1")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert _errors(response) == ["Too many attempts, try again in 10 minutes."]


def test_the_password_is_not_checked_while_refused(client, carol, monkeypatch):
    for _ in range(3):
        _sign_in(client, reverse("login"), "carol", "wrong")
    checked = []
    monkeypatch.setattr(
        "django.contrib.auth.forms.authenticate", lambda *a, **k: checked.append(k) or None
    )
    _sign_in(client, reverse("login"), "carol", "carol-pass-1")
    assert checked == []


def test_failures_on_one_page_count_on_the_other(client, carol):
    for _ in range(3):
        _sign_in(client, reverse("login"), "carol", "wrong")
    response = _sign_in(client, reverse("admin:login"), "carol", "carol-pass-1")
    assert any("Too many attempts" in e for e in _errors(response))


def test_the_limit_is_per_username_and_address(client, carol, alice):
    for _ in range(3):
        _sign_in(client, reverse("login"), "carol", "wrong")
    # Another address, or another username, still signs in.
    response = _sign_in(client, reverse("login"), "carol", "carol-pass-1", address="10.0.0.2")
    assert response.status_code == 302
    client.logout()
    response = _sign_in(client, reverse("login"), "alice", "alice-pass-1")
    assert response.status_code == 302


def test_usernames_are_counted_case_insensitively(client, carol):
    for name in ["carol", "CAROL", "Carol"]:
        _sign_in(client, reverse("login"), name, "wrong")
    response = _sign_in(client, reverse("login"), "carol", "carol-pass-1")
    assert any("Too many attempts" in e for e in _errors(response))


def test_fewer_failures_than_the_limit_still_sign_in(client, carol):
    for _ in range(2):
        _sign_in(client, reverse("admin:login"), "carol", "wrong")
    response = _sign_in(client, reverse("admin:login"), "carol", "carol-pass-1")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(carol.pk)


def test_the_window_expiring_lifts_the_refusal(client, carol, monkeypatch):
    import time

    for _ in range(3):
        _sign_in(client, reverse("login"), "carol", "wrong")
    later = time.time() + 601
    monkeypatch.setattr("accounts.login_throttle.time.time", lambda: later)
    # The cache entry would also have expired by then; the stored deadline says the same.
    response = _sign_in(client, reverse("login"), "carol", "carol-pass-1")
    assert response.status_code == 302


@pytest.mark.parametrize(
    "spelling", ["\uff43arol", "\uff23\uff21\uff32\uff2f\uff2c", " carol\t", "\u3000carol", "CAROL"]
)
def test_every_spelling_of_a_name_shares_its_count(client, carol, spelling):
    for _ in range(3):
        _sign_in(client, reverse("login"), spelling, "wrong")
    response = _sign_in(client, reverse("admin:login"), "carol", "carol-pass-1")
    assert _errors(response) == ["Too many attempts, try again in 10 minutes."]


def test_the_canonical_name_folds_width_case_ligatures_and_marks():
    assert username_canonical(" \uff26\uff29\u0301ﬁ ") == username_canonical("fíFI")
    assert username_canonical("ﬁona") == "fiona"
    assert username_canonical("jose\u0301") == username_canonical("JOSÉ")
