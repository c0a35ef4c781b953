import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    # Public and greppable: `sk-csm-` and the first characters of the secret.
    prefix = models.CharField(max_length=16, db_index=True)
    # SHA-256 of the whole key; the key itself is never stored.
    hashed_key = models.CharField(max_length=64, unique=True)
    last_four = models.CharField(max_length=4)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}…{self.last_four} ({self.name or 'unnamed'})"

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    def is_usable(self, now: datetime.datetime | None = None) -> bool:
        return self.status(now) == "active"

    def status(self, now: datetime.datetime | None = None) -> str:
        """active, revoked or expired."""
        if self.revoked is not None:
            return "revoked"
        now = now or timezone.now()
        return "active" if self.expires is None or self.expires > now else "expired"


class Usage(models.Model):
    """What one user, through one key (or keyless), generated on one day."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # RESTRICT: usage keeps its key (keys are revoked, not deleted) unless the user goes too.
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.RESTRICT, related_name="usage"
    )
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    input_characters = models.PositiveBigIntegerField(default=0)
    audio_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "usage"
        # Two partial indexes rather than NULLS NOT DISTINCT, which SQLite lacks.
        constraints = [
            models.UniqueConstraint(
                fields=["user", "api_key", "day"],
                condition=models.Q(api_key__isnull=False),
                name="usage_one_row_per_user_key_day",
            ),
            models.UniqueConstraint(
                fields=["user", "day"],
                condition=models.Q(api_key__isnull=True),
                name="usage_one_keyless_row_per_user_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.day}"
