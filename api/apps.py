from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The HTTP contract: every /v1 route, OpenAI's error shape, throttling, OpenAPI."""

    name = "api"

    def ready(self) -> None:
        # Registers the OpenAPI extension for the API key authentication.
        from api import schema  # noqa: F401
        from api.body_limits import register_body_limits

        # The body guard in front of Django learns which routes take large bodies.
        register_body_limits()
