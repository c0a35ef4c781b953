"""The browser pages and the session endpoints behind them."""

from django.contrib.auth.views import LogoutView
from django.urls import path

from web import accounts, cloning, pages, speech, voices

urlpatterns = [
    path("login/", accounts.SignInView.as_view(), name="login"),
    # POST only (Django 5): a link or an image tag cannot sign anyone out.
    path("logout/", LogoutView.as_view(), name="logout"),
    path("keys/", accounts.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke/", accounts.api_key_revoke_view, name="api-key-revoke"),
    path("", pages.home, name="home"),
    path("voice-cloning", pages.voice_cloning, name="voice-cloning"),
    path("voice-cloning/clone", cloning.clone_start, name="ui-clone"),
    path("voice-cloning/jobs/<uuid:job_id>", cloning.job_status, name="ui-job"),
    path("voice-cloning/voices/<uuid:voice_id>/audio", voices.voice_audio, name="ui-voice-audio"),
    path(
        "voice-cloning/voices/standard/<str:name>/preview",
        voices.standard_voice_preview,
        name="ui-standard-voice-preview",
    ),
    path(
        "voice-cloning/voices/<uuid:voice_id>/delete",
        voices.voice_delete_view,
        name="ui-voice-delete",
    ),
    path("voice-cloning/speech", speech.speech_prepare, name="ui-speech"),
    path("voice-cloning/speech/<str:token>", speech.speech_audio, name="ui-speech-audio"),
    path("connect", pages.connect, name="connect"),
]
