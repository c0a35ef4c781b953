from django.contrib.auth.views import LogoutView
from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    # POST only (Django 5): a link or an image tag cannot sign anyone out.
    path("logout/", LogoutView.as_view(), name="logout"),
    path("keys/", views.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
]
