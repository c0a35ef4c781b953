from django.apps import AppConfig
from django.db.models.signals import post_save

from core.health import register_readiness_check
from speech.engines.registry import engines_use_references
from speech.health import speech_readiness
from speech.metrics import register_speech_metrics


class SpeechConfig(AppConfig):
    name = "speech"
    verbose_name = "Speech"

    def ready(self) -> None:
        # Models (and so the provider built on them) can be imported only once apps are ready.
        from speech.references import VoiceReferences, voice_saved
        from voices.models import Voice

        # The engines learn of stored voices only through this provider.
        engines_use_references(VoiceReferences())
        post_save.connect(voice_saved, sender=Voice, dispatch_uid="speech-voice-created")
        register_speech_metrics()
        register_readiness_check(speech_readiness)
