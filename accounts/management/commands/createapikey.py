from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.errors import ApiKeyLimitReached
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for USERNAME (the user is created if missing); prints the key last."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            self.stdout.write(f"Created user '{username}'.")
        try:
            api_key, key = api_key_create(owner=user, name=name)
        except ApiKeyLimitReached as exc:
            # The cap holds here too: an operator raises API_KEYS_PER_USER_MAX to change it.
            raise CommandError(
                f"'{username}': {exc.message} (API_KEYS_PER_USER_MAX={exc.limit}; revoke a key "
                "in the admin or on the API keys page, or raise the setting)"
            ) from exc
        self.stdout.write(f"API key {api_key.display} for '{username}'; shown only now:")
        self.stdout.write(key)
