"""Strict environment readers: good values parse, bad ones stop start-up naming the variable."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from csmsite.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
)

NAME = "CSM_TEST_SETTING"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(f"{NAME}_FILE", raising=False)


# --- env_str ------------------------------------------------------------------------------


def test_env_str_reads_and_strips(monkeypatch):
    monkeypatch.setenv(NAME, "  hello world \n")

    assert env_str(NAME, "default") == "hello world"


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_env_str_defaults_when_unset_or_blank(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    assert env_str(NAME, "default") == "default"
    assert env_str(NAME) == ""


# --- env_bool -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_env_bool_parses_good_values(monkeypatch, value, expected):
    monkeypatch.setenv(NAME, value)

    assert env_bool(NAME, not expected) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "y", "n", "truee", "enabled", "-1"])
def test_env_bool_rejects_bad_values_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(NAME, value)

    with pytest.raises(ImproperlyConfigured) as error:
        env_bool(NAME, False)

    assert NAME in str(error.value)
    assert repr(value) in str(error.value)


@pytest.mark.parametrize("value", [None, "", "  "])
@pytest.mark.parametrize("default", [True, False])
def test_env_bool_defaults_when_unset_or_blank(monkeypatch, value, default):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    assert env_bool(NAME, default) is default


# --- env_int ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("12", 12), (" 42 ", 42), ("-7", -7), ("0", 0), ("+5", 5)]
)
def test_env_int_parses_good_values(monkeypatch, value, expected):
    monkeypatch.setenv(NAME, value)

    assert env_int(NAME, 99) == expected


@pytest.mark.parametrize("value", ["12x", "1.5", "ten", "0x10", "1e3", "12 13"])
def test_env_int_rejects_non_integers_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(NAME, value)

    with pytest.raises(ImproperlyConfigured) as error:
        env_int(NAME, 1)

    assert NAME in str(error.value)
    assert "not an integer" in str(error.value)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_env_int_defaults_when_unset_or_blank(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    assert env_int(NAME, 32, minimum=1, maximum=64) == 32


def test_env_int_accepts_the_bounds_themselves(monkeypatch):
    monkeypatch.setenv(NAME, "1")
    assert env_int(NAME, 5, minimum=1, maximum=10) == 1

    monkeypatch.setenv(NAME, "10")
    assert env_int(NAME, 5, minimum=1, maximum=10) == 10


def test_env_int_below_minimum_raises_naming_the_variable(monkeypatch):
    monkeypatch.setenv(NAME, "0")

    with pytest.raises(ImproperlyConfigured) as error:
        env_int(NAME, 5, minimum=1, maximum=10)

    assert NAME in str(error.value)
    assert "minimum 1" in str(error.value)


def test_env_int_above_maximum_raises_naming_the_variable(monkeypatch):
    monkeypatch.setenv(NAME, "11")

    with pytest.raises(ImproperlyConfigured) as error:
        env_int(NAME, 5, minimum=1, maximum=10)

    assert NAME in str(error.value)
    assert "maximum 10" in str(error.value)


def test_env_int_without_bounds_takes_any_integer(monkeypatch):
    monkeypatch.setenv(NAME, "-1000000")

    assert env_int(NAME, 0) == -1_000_000


# --- env_float ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("1.5", 1.5), ("2", 2.0), (" -0.25 ", -0.25), ("1e3", 1000.0)]
)
def test_env_float_parses_good_values(monkeypatch, value, expected):
    monkeypatch.setenv(NAME, value)

    assert env_float(NAME, 9.0) == expected


@pytest.mark.parametrize("value", ["1.5s", "one", "1,5", "--1"])
def test_env_float_rejects_non_numbers_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(NAME, value)

    with pytest.raises(ImproperlyConfigured) as error:
        env_float(NAME, 1.0)

    assert NAME in str(error.value)
    assert "not a number" in str(error.value)


@pytest.mark.parametrize(("value", "word"), [("0.5", "minimum"), ("3600.5", "maximum")])
def test_env_float_out_of_range_raises_naming_the_variable(monkeypatch, value, word):
    monkeypatch.setenv(NAME, value)

    with pytest.raises(ImproperlyConfigured) as error:
        env_float(NAME, 1200.0, minimum=1.0, maximum=3600.0)

    assert NAME in str(error.value)
    assert word in str(error.value)


@pytest.mark.parametrize("value", [None, "", " "])
def test_env_float_defaults_when_unset_or_blank(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    assert env_float(NAME, 1200.0, minimum=1.0, maximum=3600.0) == 1200.0


# --- env_choice ---------------------------------------------------------------------------


def test_env_choice_accepts_an_allowed_value(monkeypatch):
    monkeypatch.setenv(NAME, " csm ")

    assert env_choice(NAME, "espeak", ["espeak", "csm"]) == "csm"


def test_env_choice_rejects_others_listing_the_choices(monkeypatch):
    monkeypatch.setenv(NAME, "festival")

    with pytest.raises(ImproperlyConfigured) as error:
        env_choice(NAME, "espeak", ("espeak", "csm"))

    message = str(error.value)
    assert NAME in message
    assert "'festival'" in message
    assert "espeak, csm" in message


def test_env_choice_is_case_sensitive(monkeypatch):
    monkeypatch.setenv(NAME, "ESPEAK")

    with pytest.raises(ImproperlyConfigured, match=NAME):
        env_choice(NAME, "espeak", ["espeak", "csm"])


@pytest.mark.parametrize("value", [None, "", "  "])
def test_env_choice_defaults_when_unset_or_blank(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    assert env_choice(NAME, "espeak", iter(["espeak", "csm"])) == "espeak"


# --- env_list -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", ["a"]),
        ("a,b,c", ["a", "b", "c"]),
        (" a , b ,c ", ["a", "b", "c"]),
        ("a,,b,", ["a", "b"]),
        ("example.com, .example.org", ["example.com", ".example.org"]),
    ],
)
def test_env_list_splits_on_commas_and_strips(monkeypatch, value, expected):
    monkeypatch.setenv(NAME, value)

    assert env_list(NAME, ["default"]) == expected


@pytest.mark.parametrize("value", [None, "", "   "])
def test_env_list_defaults_when_unset_or_blank(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    default = ("localhost", "127.0.0.1")
    result = env_list(NAME, default)

    assert result == ["localhost", "127.0.0.1"]
    assert isinstance(result, list)


def test_env_list_returns_a_fresh_list_each_time():
    default = ["x"]

    result = env_list(NAME, default)
    result.append("y")

    assert default == ["x"]


# --- env_secret ---------------------------------------------------------------------------


def test_env_secret_reads_the_variable(monkeypatch):
    monkeypatch.setenv(NAME, " s3cret ")

    assert env_secret(NAME) == "s3cret"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_env_secret_defaults_when_unset_or_blank(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv(NAME, value)

    assert env_secret(NAME, "fallback") == "fallback"
    assert env_secret(NAME) == ""


def test_env_secret_reads_the_file_named_by_name_file(monkeypatch, tmp_path):
    # given a Docker-style secret file with a trailing newline
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))

    assert env_secret(NAME, "fallback") == "from-the-file"


def test_env_secret_prefers_the_file_over_the_variable(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-the-file")
    monkeypatch.setenv(NAME, "from-the-variable")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))

    assert env_secret(NAME) == "from-the-file"


def test_env_secret_ignores_a_blank_name_file(monkeypatch):
    monkeypatch.setenv(NAME, "from-the-variable")
    monkeypatch.setenv(f"{NAME}_FILE", "   ")

    assert env_secret(NAME) == "from-the-variable"


def test_env_secret_missing_file_raises_naming_name_file(monkeypatch, tmp_path):
    missing = tmp_path / "does-not-exist"
    monkeypatch.setenv(f"{NAME}_FILE", str(missing))

    with pytest.raises(ImproperlyConfigured) as error:
        env_secret(NAME, "fallback")

    message = str(error.value)
    assert f"{NAME}_FILE" in message
    assert str(missing) in message
    assert "No such file" in message


def test_env_secret_unreadable_path_raises_naming_name_file(monkeypatch, tmp_path):
    # a directory where a file should be
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path))

    with pytest.raises(ImproperlyConfigured, match=f"{NAME}_FILE"):
        env_secret(NAME)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_env_float_refuses_non_finite_numbers(monkeypatch, value):
    monkeypatch.setenv("SOME_FLOAT", value)
    with pytest.raises(ImproperlyConfigured, match="SOME_FLOAT"):
        env_float("SOME_FLOAT", 1.0)


def test_env_secret_names_a_file_that_is_not_utf8(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"\xff\xfe\x00bad")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret_file))
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE"):
        env_secret("SOME_SECRET")
