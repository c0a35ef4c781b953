"""The web UI's pages and the session endpoints behind them (see ingest/web.py)."""

from django.urls import path

from ingest import web

urlpatterns = [
    path("", web.home, name="home"),
    path("voice-cloning", web.voice_cloning, name="voice-cloning"),
    path("voice-cloning/clone", web.clone_start, name="ui-clone"),
    path("voice-cloning/jobs/<uuid:job_id>", web.job_status, name="ui-job"),
    path("voice-cloning/voices/<uuid:voice_id>/audio", web.voice_audio, name="ui-voice-audio"),
    path(
        "voice-cloning/voices/<uuid:voice_id>/delete",
        web.voice_delete_view,
        name="ui-voice-delete",
    ),
    path("voice-cloning/speech", web.speech_prepare, name="ui-speech"),
    path("voice-cloning/speech/<str:token>", web.speech_audio, name="ui-speech-audio"),
    path("connect", web.connect, name="connect"),
]
