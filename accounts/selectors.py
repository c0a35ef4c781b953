"""Reads on accounts."""

import hmac

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.utils import timezone

from accounts.keys import key_hash, key_is_well_formed
from accounts.models import ApiKey
from accounts.services import api_key_cache_key, api_key_touch

# How long an authenticated key is remembered; revocation and user changes clear it at once.
_KEY_CACHE_SECONDS = 30


def api_key_authenticate(key: str) -> ApiKey | None:
    """The usable key `key` denotes, with its owner loaded; None for anything else."""
    if not key_is_well_formed(key):
        return None
    hashed = key_hash(key)
    cache_key = api_key_cache_key(hashed)
    cached = cache.get(cache_key)
    if isinstance(cached, ApiKey):
        api_key = cached
    else:
        api_key = ApiKey.objects.select_related("owner").filter(hashed_key=hashed).first()
        if api_key is None:
            return None
        if cached is None:
            # add, not set: a key changed meanwhile is marked forgotten and stays uncached.
            cache.add(cache_key, api_key, timeout=_KEY_CACHE_SECONDS)
    # The lookup was by hash already; compare in constant time all the same.
    if not hmac.compare_digest(api_key.hashed_key, hashed):
        return None
    now = timezone.now()
    if not api_key.is_usable(now) or not api_key.owner.is_active:
        return None
    api_key_touch(api_key=api_key, now=now)
    return api_key


def api_keys_of(*, user: AbstractBaseUser) -> list[ApiKey]:
    return list(ApiKey.objects.filter(owner=user).order_by("-created"))
