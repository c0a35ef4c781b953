from django.apps import AppConfig


class WebConfig(AppConfig):
    """The browser pages: sign-in, API keys, voice cloning, connect."""

    name = "web"
