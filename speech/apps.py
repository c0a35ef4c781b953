from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SpeechConfig(AppConfig):
    name = "speech"
    verbose_name = "Speech"

    def ready(self) -> None:
        from speech.engines.registry import ENGINES

        # Fail at start-up, not at the first request.
        if settings.DEFAULT_ENGINE not in ENGINES:
            raise ImproperlyConfigured(
                f"DEFAULT_ENGINE={settings.DEFAULT_ENGINE!r} must be one of: {', '.join(ENGINES)}"
            )
