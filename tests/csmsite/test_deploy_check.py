"""Production settings pass Django's deployment checks; the embedded default stays plain HTTP."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

import csmsite.settings as production_settings
from csmsite.settings import security as security_settings
from csmsite.settings import test as test_settings
from tests.support.processes import run_python

BASE_DIR = Path(__file__).resolve().parents[2]


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_"))}
    for name in ["DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "HTTPS", "DATABASE_URL", "REDIS_URL"]:
        clean.pop(name, None)
    clean.update({"VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "csmsite.settings"})
    clean.update(env)
    return run_python("manage.py", *args, env=clean, timeout=120)


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50)[:50],
    "ALLOWED_HOSTS": "speech.example.com",
}


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_passes_behind_a_tls_terminating_proxy(tmp_path):
    env = {**PRODUCTION, "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https"}
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_flags_a_site_served_without_https(tmp_path):
    result = _manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING", HTTPS="false", **PRODUCTION
    )
    assert result.returncode != 0
    assert "security.W008" in result.stderr


def test_a_malformed_proxy_header_stops_start_up(tmp_path):
    result = _manage(tmp_path, "check", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr


def test_the_embedded_default_serves_plain_http(client, settings):
    # The settings module as loaded with nothing set (the test run sets none of these).
    assert settings.HTTPS is False
    assert not getattr(settings, "SECURE_SSL_REDIRECT", False)
    response = client.get("/healthz")
    assert response.status_code == 200


def test_production_redirects_to_https_but_not_health_checks(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    assert client.get("/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    # Behind a proxy that says the request came over TLS: served, with HSTS.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    secure = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=3600")


@pytest.mark.parametrize("value", ["HTTP_X_FORWARDED_PROTO", "X_FORWARDED_PROTO,https", "HTTP_X,"])
def test_proxy_header_values_are_validated(monkeypatch, value):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", value)
    with pytest.raises(ImproperlyConfigured):
        security_settings._proxy_ssl_header()


@pytest.mark.parametrize(
    ("hosts", "https"),
    [
        ("127.0.0.1,localhost", False),
        ("192.168.1.10", False),
        ("[fd00::1]", False),
        ("*", False),
        ("speech.home.arpa,nas.local", False),
        ("speech.example.com", True),
        ("192.168.1.10,speech.example.com", True),
    ],
)
def test_https_defaults_on_only_for_a_domain_name(hosts, https):
    # given a production-like environment (DEBUG off) reached by `hosts`, HTTPS not set
    env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": hosts, "SECRET_KEY": "x" * 50}
    env.pop("HTTPS", None)
    # when
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from django.conf import settings; print(settings.HTTPS)"],
        env={**env, "DJANGO_SETTINGS_MODULE": "csmsite.settings"},
        capture_output=True, text=True, check=True, cwd=BASE_DIR,
    )  # fmt: skip
    # then
    assert result.stdout.strip() == str(https)


def test_test_only_switches_exist_only_in_the_test_settings(settings):
    # given production's settings module and the test suite's, which extends it
    # then the suite runs with the test settings, and only they have the test switches, off
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "csmsite.settings.test"
    assert settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS is False
    added = {name for name in dir(test_settings) if name.isupper()} - set(dir(production_settings))
    assert added == {"YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS"}
    assert test_settings.YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS is False
