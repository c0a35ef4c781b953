from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Cross-cutting infrastructure: body limits, middleware, logging, cache, health, metrics."""

    name = "core"
