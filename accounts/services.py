"""Writes on accounts."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import transaction

_DEFAULT_USER_CACHE_KEY = "accounts:default-user"
_DEFAULT_USER_CACHE_SECONDS = 60


@transaction.atomic
def user_ensure_admin(
    *, username: str | None = None, password: str | None = None
) -> tuple[AbstractUser, str | None]:
    """Make sure the admin account exists; return it and its password if it was just created.

    Without a given password a random one is generated and returned once, never stored in clear.
    """
    username = username or settings.ADMIN_USERNAME
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, None
    password = password or secrets.token_urlsafe(16)
    user = User.objects.create_superuser(username=username, email="", password=password)
    return user, password


def user_default() -> AbstractUser:
    """The account keyless requests act as (created on first use, with no usable password).

    Kept in the cache briefly: a database round trip (and, under ASGI, a fresh connection on
    a fresh thread) per request would cost more than the rest of the request's own work.
    """
    cached = cache.get(_DEFAULT_USER_CACHE_KEY)
    if cached is not None:
        return cached
    user = _user_default_from_db()
    cache.set(_DEFAULT_USER_CACHE_KEY, user, timeout=_DEFAULT_USER_CACHE_SECONDS)
    return user


def _user_default_from_db() -> AbstractUser:
    User = get_user_model()
    user, created = User.objects.get_or_create(username=settings.ADMIN_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
