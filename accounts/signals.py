"""Keep the authentication cache honest when users or keys change."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import ApiKey
from accounts.services import api_key_forget, user_default_forget


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
@receiver(post_delete, sender=settings.AUTH_USER_MODEL)
def user_changed(sender, instance, **kwargs) -> None:
    # A deactivated user's keys must stop working now, not when the cache expires.
    for hashed_key in ApiKey.objects.filter(owner_id=instance.pk).values_list(
        "hashed_key", flat=True
    ):
        api_key_forget(hashed_key=hashed_key)
    user_default_forget()


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def api_key_changed(sender, instance: ApiKey, created: bool = False, **kwargs) -> None:
    if not created:  # a new key cannot be cached yet
        api_key_forget(hashed_key=instance.hashed_key)
