"""Writes on accounts: the admin account, API keys, usage."""

import datetime
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.errors import ApiKeyLimitReached
from accounts.keys import DISPLAY_PREFIX_LENGTH, key_generate, key_hash
from accounts.models import ApiKey, Usage

_DEFAULT_USER_CACHE_KEY = "accounts:default-user"
_DEFAULT_USER_CACHE_SECONDS = 60
_FORGOTTEN = "forgotten"
# At least as long as the authenticator keeps a key cached.
_FORGOTTEN_SECONDS = 60
_TOUCH_SECONDS = 60


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
        if not user.is_superuser:
            # A keyless request may have created the account first, without rights.
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        if user.has_usable_password():
            return user, None
    else:
        user = User(username=username, is_staff=True, is_superuser=True)
    password = password or secrets.token_urlsafe(16)
    user.set_password(password)
    user.save()
    return user, password


def user_default() -> AbstractUser:
    """The account keyless requests act as (created on first use, with no usable password).

    Kept in the cache briefly: a database round trip (and, under ASGI, a fresh connection on
    a fresh thread) per request would cost more than the rest of the request's own work.
    """
    cached = cache.get(_DEFAULT_USER_CACHE_KEY)
    if cached is not None:
        return cached
    User = get_user_model()
    user, created = User.objects.get_or_create(username=settings.ADMIN_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    cache.set(_DEFAULT_USER_CACHE_KEY, user, timeout=_DEFAULT_USER_CACHE_SECONDS)
    return user


def user_default_forget() -> None:
    cache.delete(_DEFAULT_USER_CACHE_KEY)


@transaction.atomic
def api_key_create(
    *, owner: AbstractUser, name: str = "", expires: datetime.datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned here once and never stored.

    Raises ApiKeyLimitReached when the owner already has API_KEYS_PER_USER_MAX active keys
    (whoever creates it: the owner's page, or an operator's `createapikey`).
    """
    limit = settings.API_KEYS_PER_USER_MAX
    if limit:
        # Lock the owner's row: two creations at once cannot both see room for one more.
        list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values("pk"))
        if _active_keys_count(owner=owner) >= limit:
            raise ApiKeyLimitReached(limit)
    key = key_generate()
    api_key = ApiKey.objects.create(
        owner=owner,
        name=name,
        prefix=key[:DISPLAY_PREFIX_LENGTH],
        hashed_key=key_hash(key),
        last_four=key[-4:],
        expires=expires,
    )
    return api_key, key


def _active_keys_count(*, owner: AbstractUser) -> int:
    now = timezone.now()
    return (
        ApiKey.objects.filter(owner=owner, revoked=None)
        .filter(Q(expires__isnull=True) | Q(expires__gt=now))
        .count()
    )


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke at once: the save signal drops the key from the authentication cache."""
    if api_key.revoked is None:
        api_key.revoked = timezone.now()
        api_key.save(update_fields=["revoked"])


def api_key_forget(*, hashed_key: str) -> None:
    """Drop a key from the authentication cache, so a change takes effect at once.

    A marker rather than a delete: a request that read the key just before the change must
    not put the old copy back (the authenticator only adds to an empty entry).
    """
    cache.set(api_key_cache_key(hashed_key), _FORGOTTEN, timeout=_FORGOTTEN_SECONDS)


def api_key_cache_key(hashed_key: str) -> str:
    return f"accounts:api-key:{hashed_key}"


def api_key_touch(*, api_key: ApiKey, now: datetime.datetime) -> None:
    """Record use at most once a minute per key, across all processes: an atomic cache add
    decides which request writes."""
    if cache.add(f"accounts:api-key-touched:{api_key.pk}", True, timeout=_TOUCH_SECONDS):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used=now)
        api_key.last_used = now


def usage_record(
    *, user: AbstractUser, api_key: ApiKey | None, input_characters: int, audio_seconds: float
) -> None:
    """Add one generation to the day's usage row of this user and key."""
    day = timezone.now().date()
    increments = {
        "requests": F("requests") + 1,
        "input_characters": F("input_characters") + input_characters,
        "audio_seconds": F("audio_seconds") + audio_seconds,
    }
    rows = Usage.objects.filter(user=user, api_key=api_key, day=day)
    if rows.update(**increments):
        return
    try:
        with transaction.atomic():
            Usage.objects.create(
                user=user,
                api_key=api_key,
                day=day,
                requests=1,
                input_characters=input_characters,
                audio_seconds=audio_seconds,
            )
    except IntegrityError:
        # Another request created the row between our update and insert.
        rows.update(**increments)
