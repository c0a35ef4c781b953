"""A voice's files go with its row, however the row is deleted (directly, in bulk in the admin,
or by cascade when its owner is deleted)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from voices.models import Voice


@receiver(post_delete, sender=Voice)
def voice_deleted(sender, instance: Voice, **kwargs) -> None:
    name = instance.reference_audio.name
    if name:
        storage = instance.reference_audio.storage
        # Only once the deletion is committed: a rolled-back delete keeps its file.
        transaction.on_commit(lambda: storage.delete(name))
