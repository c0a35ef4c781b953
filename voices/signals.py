"""A voice's files go with its row, however the row is deleted (directly, in bulk in the admin,
or by cascade when its owner is deleted); likewise a consent's recording."""

from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.db.models.signals import post_delete
from django.dispatch import receiver

from voices.models import Voice, VoiceConsent


def delete_files_on_commit(*files: FieldFile) -> None:
    """Delete stored files once the deletion of their row is committed (a rollback keeps them)."""
    for file in files:
        name = file.name
        if name:
            storage = file.storage
            transaction.on_commit(lambda storage=storage, name=name: storage.delete(name))


@receiver(post_delete, sender=Voice)
def voice_deleted(sender, instance: Voice, **kwargs) -> None:
    delete_files_on_commit(instance.reference_audio, instance.original_audio)


@receiver(post_delete, sender=VoiceConsent)
def consent_deleted(sender, instance: VoiceConsent, **kwargs) -> None:
    delete_files_on_commit(instance.recording)
