from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    verbose_name = "Voice ingestion"

    def ready(self) -> None:
        from ingest import signals  # noqa: F401
