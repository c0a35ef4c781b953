from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Registers the schema extension and the cache-invalidating signal handlers.
        from accounts import schema, signals  # noqa: F401
