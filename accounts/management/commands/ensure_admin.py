from django.core.management.base import BaseCommand

from accounts.services import user_ensure_admin


class Command(BaseCommand):
    help = "Make sure the admin account exists; print its password if it was just created."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default=None)

    def handle(self, *args, username: str | None = None, **options) -> None:
        user, password = user_ensure_admin(username=username)
        if password is None:
            self.stdout.write(f"Admin account '{user.username}' exists.")
        else:
            self.stdout.write(
                f"Created admin account '{user.username}' with password: {password}\n"
                "Keep it: it is shown only this once (change it with `manage.py changepassword`)."
            )
