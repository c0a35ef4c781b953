"""Every /v1 route, listed once. csmsite/urls.py mounts this list under /v1 and /api/v1."""

from django.urls import path

from api import catalog, cloning, consents, speech, transcriptions, voices, watermark

urlpatterns = [
    # Speech (OpenAI's audio API) and the original server's conversation route.
    path("audio/speech", speech.SpeechView.as_view(), name="speech"),
    path("audio/conversation", speech.ConversationView.as_view(), name="conversation"),
    # Speech to text (OpenAI's audio API), with the Whisper model that transcribes clones.
    path(
        "audio/transcriptions",
        transcriptions.TranscriptionView.as_view(),
        name="transcriptions",
    ),
    path("audio/translations", transcriptions.TranslationView.as_view(), name="translations"),
    path(
        "audio/speech/response-formats",
        catalog.ResponseFormatListView.as_view(),
        name="response-formats",
    ),
    # The catalog of models.
    path("audio/models", catalog.AudioModelListView.as_view(), name="audio-models"),
    path("models", catalog.ModelListView.as_view(), name="models"),
    path("models/<str:model_id>", catalog.ModelDetailView.as_view(), name="model-detail"),
    # The watermark detector.
    path(
        "audio/watermark/detect",
        watermark.WatermarkDetectView.as_view(),
        name="watermark-detect",
    ),
    # Voices, OpenAI's shape: GET lists voices, POST creates one.
    path("audio/voices", voices.VoicesView.as_view(), name="voices-create"),
    path("audio/voices/<str:voice_id>", voices.VoiceDetailView.as_view(), name="voice-detail"),
    # Consent recordings.
    path("audio/voice_consents", consents.VoiceConsentListView.as_view(), name="voice-consents"),
    path(
        "audio/voice_consents/<str:consent_id>",
        consents.VoiceConsentDetailView.as_view(),
        name="voice-consent-detail",
    ),
    # Cloning, the original server's routes.
    path("voice-cloning/clone", cloning.CloneView.as_view(), name="voice-clone"),
    path(
        "voice-cloning/clone-from-youtube",
        cloning.CloneYoutubeView.as_view(),
        name="voice-clone-youtube",
    ),
    # The original server's documented alias.
    path(
        "audio/speech/voice-cloning/youtube",
        cloning.CloneYoutubeView.as_view(),
        name="voice-clone-youtube-alias",
    ),
    path("voice-cloning/voices", cloning.ClonedVoiceListView.as_view(), name="cloned-voices"),
    path(
        "voice-cloning/voices/<str:voice_id>",
        cloning.ClonedVoiceDetailView.as_view(),
        name="cloned-voice-detail",
    ),
    path(
        "voice-cloning/voices/<str:voice_id>/preview",
        cloning.VoicePreviewView.as_view(),
        name="cloned-voice-preview",
    ),
    path("voice-cloning/generate", cloning.GenerateView.as_view(), name="cloned-voice-generate"),
    path("voice-cloning/jobs/<str:job_id>", cloning.JobView.as_view(), name="ingest-job"),
]
