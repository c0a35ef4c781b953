from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

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
        api_key, key = api_key_create(owner=user, name=name)
        self.stdout.write(f"API key {api_key.display} for '{username}'; shown only now:")
        self.stdout.write(key)
