"""Sign-in throttling, shared by the login page's form and the admin's.

After LOGIN_MAX_FAILURES failed attempts within LOGIN_FAILURE_WINDOW_SECONDS, sign-in is
refused without checking the password. The count lives in the cache (Redis in production), so
every server process shares it; the window starts at the first failure. It is kept per
username and client address: one attacker cannot lock a user out from everywhere, and
guessing many passwords for one account from one address is stopped.

The username is counted in the form that identifies the account, not as typed: Django
NFKC-normalises a username before looking it up, so "ivan" with a fullwidth "i" signs in as
"ivan".
The counter's name is the NFKC-casefolded, stripped name, so every spelling that can reach
one account (width, case, combining marks, ligatures, surrounding whitespace) shares its count.
"""

import hashlib
import math
import time
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from core.cache import limits_cache as cache

T = TypeVar("T")


def sign_in_throttled(check: Callable[[], T], *, request: HttpRequest | None, username: str) -> T:
    """Run `check` (a form's credential check) unless this username and address are refused;
    a ValidationError from it counts as a failure. Refusal is a ValidationError too, with the
    code "throttled", so a form shows it like any other sign-in error."""
    key = _failures_key(request, username)
    record = _current_record(key)
    if record and record["failures"] >= settings.LOGIN_MAX_FAILURES:
        minutes = max(1, math.ceil((record["until"] - time.time()) / 60))
        raise ValidationError(
            f"Too many attempts, try again in {minutes} minute{'s' if minutes > 1 else ''}.",
            code="throttled",
        )
    try:
        return check()
    except ValidationError:
        _failure_record(key, record)
        raise


def username_canonical(username: str) -> str:
    """The name every spelling of one account's username shares (Unicode's caseless match:
    NFKC, casefold, NFKC again, since casefolding can undo the normal form)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())
    return folded.strip()


def _failures_key(request: HttpRequest | None, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    name = username_canonical(username)
    digest = hashlib.sha256(f"{name}\0{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def _current_record(key: str) -> dict[str, Any] | None:
    record = cache.get(key)
    if record and record["until"] <= time.time():
        return None  # the window has passed (the cache may keep the entry a little longer)
    return record


def _failure_record(key: str, record: dict[str, Any] | None) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    now = time.time()
    if not record or record["until"] <= now:
        record = {"failures": 0, "until": now + window}
    record["failures"] += 1
    cache.set(key, record, timeout=max(1, math.ceil(record["until"] - now)))
