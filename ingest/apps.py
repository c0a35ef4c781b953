from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    verbose_name = "Voice ingestion"

    def ready(self) -> None:
        # Connects the receivers; Django allows importing models only once the apps are ready.
        from ingest import signals  # noqa: F401
        from ingest.metrics import register_ingest_metrics

        register_ingest_metrics()
