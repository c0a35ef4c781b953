from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save


class SpeechConfig(AppConfig):
    name = "speech"
    verbose_name = "Speech"

    def ready(self) -> None:
        from voices.models import Voice

        post_save.connect(_voice_saved, sender=Voice, dispatch_uid="speech-voice-created")


def _voice_saved(sender, instance, created: bool, **kwargs) -> None:
    """A new voice's reference is prepared for the engines once the voice is committed (the
    codes of its reference, say), so its first request does not pay for it."""
    if created and instance.reference_audio:
        from speech.engines.registry import engines_voice_created

        voice_id = str(instance.pk)
        transaction.on_commit(lambda: engines_voice_created(voice_id))
