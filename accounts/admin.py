"""Admin for API keys and usage.

A key's hash never appears here: it is excluded from every form, list and search, so the
admin cannot become a place to harvest hashes from. Keys are created only where the
plaintext can be shown once (the keys page, `manage.py createapikey`), so there is no "add".
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext

from accounts.login_throttle import sign_in_throttled
from accounts.models import ApiKey, Usage
from accounts.services import api_key_revoke


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form: the login page's limit, counted in the same place. It lives
    here, beside the site setting that uses it, because accounts cannot import the web app
    that holds the login page's form."""

    def clean(self) -> dict[str, Any]:
        username = self.data.get("username", "") or ""
        return sign_in_throttled(super().clean, request=self.request, username=username)


# The admin's sign-in is throttled like the login page's (its path is ADMIN_URL).
admin.site.login_form = ThrottledAdminAuthenticationForm


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(Q(expires__isnull=True) | Q(expires__gt=now), revoked=None)
        if self.value() == "expired":
            return queryset.filter(expires__lte=now, revoked=None)
        if self.value() == "revoked":
            return queryset.exclude(revoked=None)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "last_four",
        "name",
        "owner",
        "created",
        "last_used",
        "expires",
        "revoked",
    )
    list_display_links = ("prefix", "last_four")
    list_filter = (ApiKeyStatusFilter, "created", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("prefix", "name", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "created"
    # Only the label and the expiry are editable; revoking goes through the action, which
    # uses the service (and so clears the authentication cache).
    fields = ("name", "owner", "prefix", "last_four", "created", "last_used", "expires", "revoked")
    readonly_fields = ("owner", "prefix", "last_four", "created", "last_used", "revoked")
    exclude = ("hashed_key",)
    actions = ("revoke_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Keys are revoked, not deleted: their usage history keeps pointing at them.
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        to_revoke = list(queryset.filter(revoked=None))
        for api_key in to_revoke:
            api_key_revoke(api_key=api_key)
        self.message_user(
            request,
            ngettext("Revoked %d key.", "Revoked %d keys.", len(to_revoke)) % len(to_revoke),
            messages.SUCCESS,
        )


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    """Read-only: usage rows are written by the speech API, never by hand."""

    list_display = (
        "day",
        "user",
        "api_key",
        "requests",
        "input_characters",
        "audio_seconds_display",
    )
    list_filter = ("day", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username",)
    list_select_related = ("user", "api_key")
    date_hierarchy = "day"

    @admin.display(description="audio seconds", ordering="audio_seconds")
    def audio_seconds_display(self, usage: Usage) -> str:
        return f"{usage.audio_seconds:.1f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Usage | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Usage | None = None) -> bool:
        return False
