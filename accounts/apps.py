from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Registers the cache-invalidating signal handlers.
        from accounts import signals  # noqa: F401
