"""API keys: their format, how they are stored, and Bearer authentication against a live server."""

import datetime
import io
import logging
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from openai import OpenAI

from accounts import keys
from accounts.keys import KEY_PREFIX, key_generate, key_hash, key_is_well_formed
from accounts.models import ApiKey, Usage
from accounts.selectors import api_key_authenticate
from accounts.services import api_key_create, api_key_revoke, user_default
from tests.support.processes import run_python
from voices.models import Voice

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SPEECH = {"model": "tts-1", "input": "Hi.", "response_format": "pcm"}


def _speak(base_url: str, authorization: str | None = None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.post(f"{base_url}/v1/audio/speech", json=SPEECH, headers=headers, timeout=60)


def _bearer(key: str) -> str:
    return f"Bearer {key}"


def _assert_invalid_api_key(response: httpx.Response) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def _flip(key: str, position: int) -> str:
    """`key` with the character at `position` replaced by another one of the same alphabet."""
    char = key[position]
    replacement = ALPHABET[(ALPHABET.index(char) + 1) % len(ALPHABET)] if char in ALPHABET else "X"
    return key[:position] + replacement + key[position + 1 :]


def _base62_decode(text: str) -> int:
    number = 0
    for char in text:
        number = number * 62 + ALPHABET.index(char)
    return number


def _unknown_well_formed_key() -> str:
    return key_generate()


# --- Format -----------------------------------------------------------------------------------


def test_a_key_has_the_prefix_the_length_and_only_base62_characters():
    key = key_generate()

    assert key.startswith("sk-csm-")
    assert KEY_PREFIX == "sk-csm-"
    # `sk-csm-` + 43 characters of secret + 6 of checksum
    assert len(key) == 7 + 43 + 6 == keys.KEY_LENGTH
    assert all(char in ALPHABET for char in key[len(KEY_PREFIX) :])
    assert key_is_well_formed(key)


def test_a_key_carries_a_256_bit_secret(monkeypatch):
    # given a spy on the randomness the key is made from
    requested: list[int] = []
    drawn: list[bytes] = []
    real_token_bytes = keys.secrets.token_bytes

    def spy(n: int) -> bytes:
        requested.append(n)
        drawn.append(real_token_bytes(n))
        return drawn[-1]

    monkeypatch.setattr(keys.secrets, "token_bytes", spy)
    # when
    key = key_generate()
    # then 32 random bytes were drawn, and all of them are in the key, losslessly
    assert requested == [32]
    secret = key[len(KEY_PREFIX) : len(KEY_PREFIX) + 43]
    assert _base62_decode(secret) == int.from_bytes(drawn[0], "big")


def test_two_keys_differ():
    generated = {key_generate() for _ in range(200)}

    assert len(generated) == 200
    # not merely the checksum: the secrets themselves all differ
    assert len({key[7:50] for key in generated}) == 200


def test_changing_any_single_character_makes_a_key_malformed():
    key = key_generate()
    assert key_is_well_formed(key)

    for position in range(len(key)):
        assert not key_is_well_formed(_flip(key, position)), position


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "sk-csm-",
        "sk-proj-abcdef",
        "not a key at all",
        "any",
    ],
)
def test_obviously_malformed_keys_are_not_well_formed(candidate):
    assert not key_is_well_formed(candidate)


def test_a_key_of_the_right_length_with_a_foreign_character_is_malformed():
    key = key_generate()
    for bad in ("-", "_", "é", " ", "+", "/"):
        candidate = key[:20] + bad + key[21:]
        assert len(candidate) == len(key)
        assert not key_is_well_formed(candidate)


def test_a_wrong_prefix_of_the_right_length_is_malformed():
    key = key_generate()

    assert not key_is_well_formed("sk-abc-" + key[7:])
    assert not key_is_well_formed("SK-CSM-" + key[7:])


def test_a_malformed_key_is_refused_without_any_database_query(
    alice_key, django_assert_num_queries
):
    malformed = [
        "",
        "junk",
        _flip(alice_key, 20),  # a typo in a real key
        _flip(alice_key, len(alice_key) - 1),  # a typo in its checksum
        alice_key[:-1],  # truncated
        alice_key + "x",  # too long
        "sk-proj-" + alice_key[8:],
    ]
    for candidate in malformed:
        with django_assert_num_queries(0):
            assert api_key_authenticate(candidate) is None


def test_a_well_formed_unknown_key_costs_one_query(alice, django_assert_num_queries):
    # The counterpart of the test above: the query counter does see the lookup.
    with django_assert_num_queries(1):
        assert api_key_authenticate(_unknown_well_formed_key()) is None


def test_a_valid_key_authenticates_to_its_owner(alice, alice_key):
    api_key = api_key_authenticate(alice_key)

    assert api_key is not None
    assert api_key.owner == alice
    assert api_key.name == "alice's test key"


# --- Storage ------------------------------------------------------------------------------------


def test_only_the_sha256_of_a_key_is_stored(alice):
    # when
    api_key, key = api_key_create(owner=alice, name="stored")
    # then
    row = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert row["hashed_key"] == key_hash(key)
    assert re.fullmatch(r"[0-9a-f]{64}", row["hashed_key"])
    secret = key[len(KEY_PREFIX) :]
    for column, value in row.items():
        assert key not in str(value), column
        assert secret not in str(value), column
    # What is kept to recognise a key is short: 6 characters of secret and the last 4.
    assert row["prefix"] == key[:13]
    assert row["last_four"] == key[-4:]


def _all_table_rows() -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows[table] = cursor.fetchall()
    return rows


def test_the_plaintext_of_a_used_key_is_in_no_table(alice, alice_key, live_server_url):
    # given the key used for a voice listing and a generation, so everything it touches is written
    voices = httpx.get(
        f"{live_server_url}/v1/audio/voices", headers={"Authorization": _bearer(alice_key)}
    )
    assert voices.status_code == 200
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    deadline = time.monotonic() + 5
    while not Usage.objects.filter(user=alice).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Usage.objects.filter(user=alice).exists()
    assert ApiKey.objects.get(owner=alice).last_used is not None
    # when every row of every table is read
    rows = _all_table_rows()
    # then the key's hash is there, its plaintext (and its secret part) nowhere
    assert "accounts_apikey" in rows
    dumped = "\n".join(repr(row) for table in rows.values() for row in table)
    assert key_hash(alice_key) in dumped
    assert alice_key not in dumped
    assert alice_key[len(KEY_PREFIX) :] not in dumped
    assert alice_key[len(KEY_PREFIX) : -6] not in dumped


# --- Authentication over the live server ------------------------------------------------------


def test_a_request_without_a_key_gets_401_in_openai_shape(live_server_url):
    response = _speak(live_server_url)

    error = _assert_invalid_api_key(response)
    assert "API key" in error["message"]


def test_a_request_without_a_key_says_no_key_was_provided(live_server_url):
    from api.errors import NO_KEY_MESSAGE

    error = _assert_invalid_api_key(_speak(live_server_url))

    assert error["message"] == NO_KEY_MESSAGE


@pytest.mark.parametrize(
    "authorization",
    ["Basic xyz", "Bearer", "Token abc", "Basicsk-csm-abc", "bearer"],
)
def test_a_malformed_authorization_header_gets_401(live_server_url, alice, authorization):
    response = _speak(live_server_url, authorization)

    _assert_invalid_api_key(response)


def test_a_valid_key_in_another_scheme_is_refused(live_server_url, alice_key):
    error = _assert_invalid_api_key(_speak(live_server_url, f"Basic {alice_key}"))

    assert alice_key not in error["message"]


def test_the_bearer_scheme_is_case_insensitive(live_server_url, alice_key):
    assert _speak(live_server_url, f"bearer {alice_key}").status_code == 200
    assert _speak(live_server_url, f"BEARER {alice_key}").status_code == 200


def test_an_unknown_well_formed_key_gets_401_and_is_not_repeated(live_server_url, alice_key):
    # given a key that is well formed but was never issued
    unknown = _unknown_well_formed_key()
    # when
    response = _speak(live_server_url, _bearer(unknown))
    # then no part of it comes back (tests/security/test_key_echo.py tries many more)
    _assert_invalid_api_key(response)
    assert unknown not in response.text
    assert unknown[len(KEY_PREFIX) : -6] not in response.text
    assert unknown[:8] not in response.text
    assert unknown[-4:] not in response.text


def test_a_malformed_bearer_key_gets_401_and_is_masked(live_server_url, alice):
    junk = "sk-csm-this-is-not-a-real-key-but-it-is-long-enough-to-leak"

    response = _speak(live_server_url, _bearer(junk))

    _assert_invalid_api_key(response)
    assert junk not in response.text
    assert "this-is-not-a-real-key" not in response.text


def test_a_typo_in_a_real_key_gets_401(live_server_url, alice_key):
    response = _speak(live_server_url, _bearer(_flip(alice_key, 30)))

    _assert_invalid_api_key(response)
    assert alice_key not in response.text


def test_a_revoked_key_is_refused_at_once(live_server_url, alice_key):
    # given the key was just used, so the server remembers it
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    # when it is revoked
    api_key_revoke(api_key=ApiKey.objects.get(hashed_key=key_hash(alice_key)))
    # then the very next request is refused
    _assert_invalid_api_key(_speak(live_server_url, _bearer(alice_key)))
    assert api_key_authenticate(alice_key) is None


def test_revoking_one_key_leaves_the_others_working(live_server_url, alice, alice_key):
    other, other_key = api_key_create(owner=alice, name="second")
    assert _speak(live_server_url, _bearer(other_key)).status_code == 200

    api_key_revoke(api_key=other)

    _assert_invalid_api_key(_speak(live_server_url, _bearer(other_key)))
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200


def test_an_expired_key_is_refused(live_server_url, alice):
    past = timezone.now() - datetime.timedelta(seconds=1)
    _, key = api_key_create(owner=alice, name="expired", expires=past)

    _assert_invalid_api_key(_speak(live_server_url, _bearer(key)))


def test_a_key_with_a_future_expiry_works_until_it_is_expired(live_server_url, alice):
    # given a key valid for another day, just used
    future = timezone.now() + datetime.timedelta(days=1)
    api_key, key = api_key_create(owner=alice, name="expiring", expires=future)
    assert _speak(live_server_url, _bearer(key)).status_code == 200
    # when its expiry is moved into the past
    api_key.expires = timezone.now() - datetime.timedelta(seconds=1)
    api_key.save()
    # then it is refused at once
    _assert_invalid_api_key(_speak(live_server_url, _bearer(key)))


def test_a_deactivated_owner_is_refused_at_once(live_server_url, alice, alice_key):
    # given alice's key was just used, so the server remembers it
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    # when alice is deactivated
    alice.is_active = False
    alice.save()
    # then her key stops working immediately
    _assert_invalid_api_key(_speak(live_server_url, _bearer(alice_key)))


def test_a_deactivated_owner_is_refused_on_other_endpoints_too(live_server_url, alice, alice_key):
    alice.is_active = False
    alice.save()

    response = httpx.get(
        f"{live_server_url}/v1/audio/voices", headers={"Authorization": _bearer(alice_key)}
    )

    _assert_invalid_api_key(response)


def test_the_openai_client_raises_authentication_error_for_an_invalid_key(live_server_url, alice):
    client = OpenAI(
        base_url=f"{live_server_url}/v1", api_key=_unknown_well_formed_key(), max_retries=0
    )

    with pytest.raises(openai.AuthenticationError) as raised:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"


def test_the_openai_client_works_with_a_valid_key(openai_client):
    audio = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello.", response_format="pcm"
    )

    assert len(audio.content) > 24000 * 2 * 0.1


# --- AUTH_MODE ---------------------------------------------------------------------------------


def test_auth_mode_defaults_to_required():
    assert django_settings.AUTH_MODE == "required"
    source = (ROOT / "csmsite" / "settings" / "security.py").read_text()
    assert re.search(
        r'^AUTH_MODE = env_choice\(\s*"AUTH_MODE",\s*"required",\s*\[\s*"required",\s*"open"\s*\]',
        source,
        re.MULTILINE,
    )


def _settings_in_a_fresh_process(**environ: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name != "AUTH_MODE"}
    env.update(environ)
    env["DJANGO_SETTINGS_MODULE"] = "csmsite.settings"
    return run_python("-c", "from django.conf import settings; print(settings.AUTH_MODE)", env=env)


def test_auth_mode_is_required_without_an_environment_variable_and_validated():
    unset = _settings_in_a_fresh_process()
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.strip() == "required"

    opened = _settings_in_a_fresh_process(AUTH_MODE="open")
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "open"

    bad = _settings_in_a_fresh_process(AUTH_MODE="off")
    assert bad.returncode != 0
    assert "AUTH_MODE" in bad.stderr
    assert "ImproperlyConfigured" in bad.stderr


@pytest.fixture
def voices_of_alice_and_the_default_account(alice, default_user) -> None:
    Voice.objects.create(owner=alice, name="alices-voice", kind=Voice.Kind.CLONED, source="upload")
    Voice.objects.create(
        owner=default_user, name="admins-voice", kind=Voice.Kind.CLONED, source="upload"
    )


def _own_stored_voices(base_url: str, authorization: str | None) -> dict[str, bool]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.get(f"{base_url}/v1/audio/voices", headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return {
        voice["name"]: voice["owned"]
        for voice in response.json()["voices"]
        if voice["kind"] != "standard"
    }


def test_required_mode_shows_no_private_voice_without_a_key(
    live_server_url, voices_of_alice_and_the_default_account
):
    assert _own_stored_voices(live_server_url, None) == {}
    _assert_invalid_api_key(_speak(live_server_url))


def test_open_mode_without_a_key_acts_as_the_default_account(
    settings, live_server_url, alice_key, voices_of_alice_and_the_default_account
):
    # given
    settings.AUTH_MODE = "open"
    # when
    speech = _speak(live_server_url)
    voices = _own_stored_voices(live_server_url, None)
    # then
    assert speech.status_code == 200, speech.text
    assert voices == {"admins-voice": True}
    assert user_default().username == settings.ADMIN_USERNAME


@pytest.mark.parametrize(
    "junk",
    ["Bearer any", "Bearer sk-csm-made-up", "Basic xyz", "Bearer"],
)
def test_open_mode_accepts_a_junk_key_as_the_default_account(
    settings, live_server_url, alice_key, voices_of_alice_and_the_default_account, junk
):
    settings.AUTH_MODE = "open"

    speech = _speak(live_server_url, junk)
    voices = _own_stored_voices(live_server_url, junk)

    assert speech.status_code == 200, speech.text
    assert voices == {"admins-voice": True}


def test_open_mode_accepts_a_well_formed_unknown_key_as_the_default_account(
    settings, live_server_url, alice_key, voices_of_alice_and_the_default_account
):
    settings.AUTH_MODE = "open"
    unknown = _bearer(_unknown_well_formed_key())

    assert _speak(live_server_url, unknown).status_code == 200
    assert _own_stored_voices(live_server_url, unknown) == {"admins-voice": True}


def test_open_mode_still_identifies_the_owner_of_a_valid_key(
    settings, live_server_url, alice_key, voices_of_alice_and_the_default_account
):
    settings.AUTH_MODE = "open"

    voices = _own_stored_voices(live_server_url, _bearer(alice_key))

    assert voices == {"alices-voice": True}


def test_open_mode_creates_the_default_account_on_first_use(settings, live_server_url):
    # given no account by the default name yet
    settings.AUTH_MODE = "open"
    User = get_user_model()
    assert not User.objects.filter(username=settings.ADMIN_USERNAME).exists()
    # when a keyless request comes
    assert _speak(live_server_url).status_code == 200
    # then the account exists, and has no password anyone could log in with
    created = User.objects.get(username=settings.ADMIN_USERNAME)
    assert not created.has_usable_password()


# --- last_used -----------------------------------------------------------------------------------


def test_last_used_is_set_on_first_use_and_not_rewritten_on_every_request(
    live_server_url, alice_key
):
    # given a key never used
    api_key = ApiKey.objects.get(hashed_key=key_hash(alice_key))
    assert api_key.last_used is None
    before = timezone.now()
    # when it is used once
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    # then its last use is recorded
    first = ApiKey.objects.get(pk=api_key.pk).last_used
    assert first is not None
    assert first >= before
    # when it is used again right away, then the recorded time is not written again
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).last_used == first
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).last_used == first


def test_an_immediate_second_authentication_writes_nothing(alice_key, django_assert_num_queries):
    # given the key was authenticated once (loaded, remembered and touched)
    assert api_key_authenticate(alice_key) is not None
    # when it is authenticated again at once, then no query at all is made
    with django_assert_num_queries(0):
        assert api_key_authenticate(alice_key) is not None


def test_a_failed_authentication_does_not_touch_last_used(live_server_url, alice, alice_key):
    api_key = ApiKey.objects.get(hashed_key=key_hash(alice_key))
    api_key_revoke(api_key=api_key)

    _assert_invalid_api_key(_speak(live_server_url, _bearer(alice_key)))

    assert ApiKey.objects.get(pk=api_key.pk).last_used is None


# --- Logs ------------------------------------------------------------------------------------


def test_keys_never_appear_in_logs(settings, caplog, live_server_url, alice_key, bob_key):
    # given everything logged at DEBUG, SQL included
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")  # Django's own loggers stop at INFO
    unknown = _unknown_well_formed_key()
    # when valid, revoked, unknown and malformed keys are used
    assert _speak(live_server_url, _bearer(alice_key)).status_code == 200
    assert (
        httpx.get(
            f"{live_server_url}/v1/audio/voices", headers={"Authorization": _bearer(bob_key)}
        ).status_code
        == 200
    )
    api_key_revoke(api_key=ApiKey.objects.get(hashed_key=key_hash(bob_key)))
    _assert_invalid_api_key(_speak(live_server_url, _bearer(bob_key)))
    _assert_invalid_api_key(_speak(live_server_url, _bearer(unknown)))
    _assert_invalid_api_key(_speak(live_server_url, _bearer(_flip(alice_key, 10))))
    _assert_invalid_api_key(_speak(live_server_url, f"Basic {alice_key}"))
    # then the server's logs were captured (its SQL looked keys up by hash) ...
    assert key_hash(alice_key) in caplog.text
    # ... and no key appears in them
    for key in (alice_key, bob_key, unknown, _flip(alice_key, 10)):
        assert key not in caplog.text
        assert key[len(KEY_PREFIX) : -6] not in caplog.text


# --- Management commands ------------------------------------------------------------------------


def test_createapikey_creates_the_user_and_prints_a_working_key_last():
    # when
    out = io.StringIO()
    call_command("createapikey", "dave", "--name", "x", stdout=out)
    # then
    lines = out.getvalue().strip().splitlines()
    key = lines[-1].strip()
    assert key_is_well_formed(key)
    dave = get_user_model().objects.get(username="dave")
    assert not dave.has_usable_password()
    api_key = api_key_authenticate(key)
    assert api_key is not None
    assert api_key.owner == dave
    assert api_key.name == "x"
    assert ApiKey.objects.get(owner=dave).hashed_key == key_hash(key)


def test_createapikey_key_works_over_http(live_server_url):
    out = io.StringIO()
    call_command("createapikey", "dave", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]

    assert _speak(live_server_url, _bearer(key)).status_code == 200


def test_createapikey_adds_a_key_to_an_existing_user(alice, alice_key):
    password_before = alice.password
    out = io.StringIO()

    call_command("createapikey", "alice", stdout=out)

    key = out.getvalue().strip().splitlines()[-1]
    assert key != alice_key
    assert "Created user" not in out.getvalue()
    assert ApiKey.objects.filter(owner=alice).count() == 2
    assert api_key_authenticate(key).owner == alice
    assert api_key_authenticate(alice_key).owner == alice
    alice.refresh_from_db()
    assert alice.password == password_before


def _ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def _password_in(output: str) -> str | None:
    found = re.search(r"password \(shown only now\): (\S+)", output)
    return found.group(1) if found else None


def _key_in(output: str) -> str | None:
    found = re.search(r"(sk-csm-[0-9A-Za-z]+)", output)
    return found.group(1) if found else None


def test_ensure_admin_creates_the_admin_with_a_password_and_a_first_key(settings):
    # when
    output = _ensure_admin()
    # then
    admin = get_user_model().objects.get(username=settings.ADMIN_USERNAME)
    assert admin.is_superuser
    assert admin.is_staff
    password = _password_in(output)
    assert password
    assert admin.check_password(password)
    key = _key_in(output)
    assert key is not None
    assert key_is_well_formed(key)
    assert api_key_authenticate(key).owner == admin
    assert ApiKey.objects.filter(owner=admin).count() == 1


def test_ensure_admin_a_second_time_creates_neither_a_password_nor_a_key(settings):
    # given
    first = _ensure_admin()
    admin = get_user_model().objects.get(username=settings.ADMIN_USERNAME)
    password_hash = admin.password
    first_key = _key_in(first)
    # when
    second = _ensure_admin()
    # then
    assert _password_in(second) is None
    assert _key_in(second) is None
    admin.refresh_from_db()
    assert admin.password == password_hash
    assert admin.check_password(_password_in(first))
    assert ApiKey.objects.filter(owner=admin).count() == 1
    assert api_key_authenticate(first_key).owner == admin


def test_ensure_admin_completes_an_account_a_keyless_request_created(settings):
    # given the default account was made by a keyless request: no rights, no password
    created = user_default()
    assert not created.has_usable_password()
    assert not created.is_superuser
    # when
    output = _ensure_admin()
    # then it becomes the admin, with a password and a key
    admin = get_user_model().objects.get(username=settings.ADMIN_USERNAME)
    assert admin.pk == created.pk
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password(_password_in(output))
    assert ApiKey.objects.filter(owner=admin).count() == 1
    # and the cached default account is the updated one
    assert user_default().is_superuser
