"""Browser pages: signing in and out, and managing one's own API keys.

A new key's plaintext exists only in the response to the POST that created it: it is never
put in the session, in a message or in a redirect URL, and the page is marked no-store so no
cache keeps it either.
"""

import dataclasses

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.errors import ApiKeyLimitReached
from accounts.models import ApiKey
from accounts.selectors import api_keys_of
from accounts.services import api_key_create, api_key_revoke
from web.forms import ApiKeyCreateForm, ThrottledAuthenticationForm


class SignInView(LoginView):
    # Someone already signed in has nothing to do on the login page.
    redirect_authenticated_user = True
    authentication_form = ThrottledAuthenticationForm


@dataclasses.dataclass(frozen=True)
class _KeyRow:
    key: ApiKey
    status: str


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    new_key = None
    status = 200
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        now = timezone.now()
        try:
            _, new_key = api_key_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                expires=form.expires_at(now=now),
            )
        except ApiKeyLimitReached as exc:
            # Shown with the form, whose fields stay as typed; nothing was created.
            form.add_error(None, exc.message)
            status = 409
        else:
            # A blank form: the fields of the key just made are done with.
            form = ApiKeyCreateForm()
    now = timezone.now()
    rows = [_KeyRow(key=key, status=key.status(now)) for key in api_keys_of(user=request.user)]
    active = sum(1 for row in rows if row.status == "active")
    context = {
        "form": form,
        "rows": rows,
        "new_key": new_key,
        "active_keys": active,
        "max_keys": settings.API_KEYS_PER_USER_MAX,
    }
    return render(request, "accounts/api_keys.html", context, status=status)


@login_required
@require_POST
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    # Filtering by owner makes another user's key look like no key at all: a 404, not a 403.
    api_key = get_object_or_404(ApiKey, pk=key_id, owner=request.user)
    api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked the key {api_key.display}.")
    return redirect("api-keys")
