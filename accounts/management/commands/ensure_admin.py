from django.core.management.base import BaseCommand

from accounts.models import ApiKey
from accounts.services import api_key_create, user_ensure_admin


class Command(BaseCommand):
    help = (
        "Make sure the admin account exists (printing its password once) and that it has an "
        "API key (printing the key once)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default=None)

    def handle(self, *args, username: str | None = None, **options) -> None:
        user, password = user_ensure_admin(username=username)
        if password is not None:
            self.stdout.write(
                f"Admin account '{user.username}', password (shown only now): {password}"
            )
        if not ApiKey.objects.filter(owner=user).exists():
            _, key = api_key_create(owner=user, name="first key")
            self.stdout.write(f"API key for '{user.username}' (shown only now): {key}")
        else:
            self.stdout.write(
                f"Admin account '{user.username}' has API keys. A new one: "
                f"python manage.py createapikey {user.username}"
            )
