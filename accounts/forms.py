"""Forms of the account pages."""

import datetime
import hashlib
import math
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest

from accounts.models import ApiKey

MAX_EXPIRY_DAYS = 3650


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        required=False,
        help_text="A label to tell your keys apart, e.g. the app or machine that uses it.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        required=False,
        help_text=f"1 to {MAX_EXPIRY_DAYS}. Leave empty for a key that never expires.",
    )

    def expires_at(self, *, now: datetime.datetime) -> datetime.datetime | None:
        """When the key should stop working, counted from `now`; None for never."""
        days = self.cleaned_data.get("expires_in_days")
        return None if days is None else now + datetime.timedelta(days=days)


class LoginThrottledError(forms.ValidationError):
    pass


def _attempts_key(request: HttpRequest | None, username: str) -> str:
    """Per username and client address: one attacker cannot lock a user out from everywhere,
    and guessing many passwords for one account from one address is stopped."""
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


class ThrottledLoginMixin:
    """Refuses sign-in, without checking the password, after LOGIN_MAX_FAILURES failures
    within LOGIN_FAILURE_WINDOW_SECONDS. The count lives in the cache (Redis in production),
    so every server process shares it; the window starts at the first failure."""

    request: HttpRequest | None

    def clean(self) -> dict:
        username = self.data.get("username", "") or ""
        key = _attempts_key(self.request, username)
        record = cache.get(key)
        if record and record["until"] <= time.time():
            record = None  # the window has passed (the cache may keep the entry a little longer)
        if record and record["failures"] >= settings.LOGIN_MAX_FAILURES:
            minutes = max(1, math.ceil((record["until"] - time.time()) / 60))
            raise LoginThrottledError(
                f"Too many attempts, try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                code="throttled",
            )
        try:
            return super().clean()
        except forms.ValidationError:
            self._record_failure(key, record)
            raise

    @staticmethod
    def _record_failure(key: str, record: dict | None) -> None:
        window = settings.LOGIN_FAILURE_WINDOW_SECONDS
        now = time.time()
        if not record or record["until"] <= now:
            record = {"failures": 0, "until": now + window}
        record["failures"] += 1
        cache.set(key, record, timeout=max(1, math.ceil(record["until"] - now)))


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The login page's form."""


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's login form: the same limit, counted in the same place."""
