"""Forms of the account pages."""

import datetime

from django import forms

from accounts.models import ApiKey

MAX_EXPIRY_DAYS = 3650


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        required=False,
        help_text="A label to tell your keys apart, e.g. the app or machine that uses it.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        required=False,
        help_text=f"1 to {MAX_EXPIRY_DAYS}. Leave empty for a key that never expires.",
    )

    def expires_at(self, *, now: datetime.datetime) -> datetime.datetime | None:
        """When the key should stop working, counted from `now`; None for never."""
        days = self.cleaned_data.get("expires_in_days")
        return None if days is None else now + datetime.timedelta(days=days)
