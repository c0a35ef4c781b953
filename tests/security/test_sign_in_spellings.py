"""The sign-in throttle counts every spelling of a username that reaches one account, on the
login page and the admin's, over a real server.

Django NFKC-normalises a username before looking it up, so a fullwidth, ligature or
decomposed spelling signs in as the plain name; the throttle must count those as one.
"""

import re
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings
from django.urls import reverse

PAGES = [reverse("login"), reverse("admin:login")]
LIMIT = 3

# (username, password, spellings that sign in as that account, spellings only counted as it)
ACCOUNTS = [
    (
        "ivan",
        "ivan-pass-1",
        ["\uff49van", "\uff49\uff56\uff41\uff4e", " ivan ", "\u3000ivan"],
        ["IVAN", "Ivan", "\uff29\uff36\uff21\uff2e"],
    ),
    (
        "fiona",
        "fiona-pass-1",
        ["ﬁona", "\u00a0ﬁona\t"],
        ["\uff26\uff29\uff2f\uff2e\uff21", "FIONA"],
    ),
    (
        "josé",
        "jose-pass-1",
        ["jose\u0301", "\uff4a\uff4f\uff53\uff45\u0301"],
        ["JOSÉ", "JOSE\u0301"],
    ),
]


@pytest.fixture(autouse=True)
def _small_limit(settings) -> None:
    settings.LOGIN_MAX_FAILURES = LIMIT
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600


@pytest.fixture
def accounts(django_user_model) -> None:
    for username, password, _, _ in ACCOUNTS:
        django_user_model.objects.create_user(username, password=password, is_staff=True)


@pytest.fixture
def browser(live_server_url: str, accounts) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        yield client


def _sign_in(client: httpx.Client, page: str, username: str, password: str) -> httpx.Response:
    client.cookies.clear()
    form = client.get(page)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return client.post(
        page,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{client.base_url}{page}"},
    )


def _signed_in(response: httpx.Response) -> bool:
    return response.status_code == 302


def _throttled(response: httpx.Response) -> bool:
    # The right password is refused (the login page words every refusal alike).
    return response.status_code == 200 and "_auth_user_id" not in response.text


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("username", "password", "aliases", "counted"), ACCOUNTS)
def test_each_spelling_signs_in_as_the_account(browser, page, username, password, aliases, counted):
    # The spellings are real ways in, so the throttle must know them.
    for alias in aliases:
        assert _signed_in(_sign_in(browser, page, alias, password)), alias


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("username", "password", "aliases", "counted"), ACCOUNTS)
def test_a_throttled_account_is_refused_under_every_spelling(
    browser, page, username, password, aliases, counted
):
    for _ in range(LIMIT):
        assert not _signed_in(_sign_in(browser, page, username, "wrong"))
    for alias in [username, *aliases, *counted]:
        assert _throttled(_sign_in(browser, page, alias, password)), alias


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("username", "password", "aliases", "counted"), ACCOUNTS)
def test_failures_under_different_spellings_add_up(
    browser, page, username, password, aliases, counted
):
    spellings = [*aliases, *counted]
    for index in range(LIMIT):
        _sign_in(browser, page, spellings[index % len(spellings)], "wrong")
    other = reverse("admin:login") if page == reverse("login") else reverse("login")
    assert _throttled(_sign_in(browser, page, username, password))
    # The two pages share the count.
    assert _throttled(_sign_in(browser, other, username, password))


def test_the_admin_page_is_the_one_configured() -> None:
    assert reverse("admin:login") == f"/{settings.ADMIN_URL}login/"
