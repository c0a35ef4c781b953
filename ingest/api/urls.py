from django.urls import path

from ingest.api import views

urlpatterns = [
    path("voice-cloning/clone", views.CloneView.as_view(), name="voice-clone"),
    path(
        "voice-cloning/clone-from-youtube",
        views.CloneYoutubeView.as_view(),
        name="voice-clone-youtube",
    ),
    # The original server's documented alias.
    path(
        "audio/speech/voice-cloning/youtube",
        views.CloneYoutubeView.as_view(),
        name="voice-clone-youtube-alias",
    ),
    path("voice-cloning/voices", views.ClonedVoiceListView.as_view(), name="cloned-voices"),
    path(
        "voice-cloning/voices/<str:voice_id>",
        views.ClonedVoiceDetailView.as_view(),
        name="cloned-voice-detail",
    ),
    path(
        "voice-cloning/voices/<str:voice_id>/preview",
        views.VoicePreviewView.as_view(),
        name="cloned-voice-preview",
    ),
    path("voice-cloning/generate", views.GenerateView.as_view(), name="cloned-voice-generate"),
    path("voice-cloning/jobs/<str:job_id>", views.JobView.as_view(), name="ingest-job"),
    path("audio/voice_consents", views.VoiceConsentListView.as_view(), name="voice-consents"),
    path(
        "audio/voice_consents/<str:consent_id>",
        views.VoiceConsentDetailView.as_view(),
        name="voice-consent-detail",
    ),
    # Before the voices app's routes: GET lists voices, POST creates one (OpenAI's API).
    path("audio/voices", views.VoicesView.as_view(), name="voices-create"),
]
