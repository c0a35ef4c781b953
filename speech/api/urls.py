from django.urls import path

from speech.api import views, watermark_views

urlpatterns = [
    path("audio/speech", views.SpeechView.as_view(), name="speech"),
    path("audio/conversation", views.ConversationView.as_view(), name="conversation"),
    path(
        "audio/speech/response-formats",
        views.ResponseFormatListView.as_view(),
        name="response-formats",
    ),
    path("audio/models", views.AudioModelListView.as_view(), name="audio-models"),
    path(
        "audio/watermark/detect",
        watermark_views.WatermarkDetectView.as_view(),
        name="watermark-detect",
    ),
    path("models", views.ModelListView.as_view(), name="models"),
]
