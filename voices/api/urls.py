from django.urls import path

from voices.api import views

urlpatterns = [
    path("audio/voices", views.VoiceListView.as_view(), name="voices"),
    path("audio/voices/<str:voice_id>", views.VoiceDetailView.as_view(), name="voice-detail"),
]
