"""The voice admin: publishing, deleting with the files, and the staff-only audio player."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.urls import reverse

from voices.models import Voice

pytestmark = pytest.mark.django_db

WAV_BYTES = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _voice(owner, name: str, *, public: bool = False, audio: bytes | None = None) -> Voice:
    voice = Voice.objects.create(
        owner=owner, name=name, kind=Voice.Kind.CLONED, source=Voice.Source.UPLOAD, is_public=public
    )
    if audio is not None:
        voice.reference_audio.save("upload.wav", ContentFile(audio))
    return voice


def _audio_path(media_root: Path, voice: Voice) -> Path:
    return media_root / voice.reference_audio.name


def _changelist() -> str:
    return reverse("admin:voices_voice_changelist")


def test_the_publish_and_unpublish_actions(admin_client, alice):
    chosen = _voice(alice, "narrator")
    other = _voice(alice, "whisper")

    admin_client.post(_changelist(), {"action": "publish", "_selected_action": [chosen.pk]})
    chosen.refresh_from_db()
    other.refresh_from_db()
    assert chosen.is_public is True
    assert other.is_public is False

    admin_client.post(_changelist(), {"action": "unpublish", "_selected_action": [chosen.pk]})
    chosen.refresh_from_db()
    assert chosen.is_public is False


def test_the_changelist_filters_by_visibility(admin_client, alice):
    public = _voice(alice, "announcer", public=True)
    _voice(alice, "diary")
    listed = list(
        admin_client.get(_changelist(), {"is_public__exact": "1"}).context["cl"].result_list
    )
    assert listed == [public]


def test_deleting_a_voice_removes_its_audio_file(
    admin_client, alice, media_root, django_capture_on_commit_callbacks
):
    voice = _voice(alice, "narrator", audio=WAV_BYTES)
    path = _audio_path(media_root, voice)
    assert path.read_bytes() == WAV_BYTES

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:voices_voice_delete", args=[voice.pk]), {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Voice.objects.filter(pk=voice.pk).exists()
    assert not path.exists()


def test_bulk_deleting_voices_removes_their_audio_files(
    admin_client, alice, bob, media_root, django_capture_on_commit_callbacks
):
    doomed = [_voice(alice, "narrator", audio=WAV_BYTES), _voice(bob, "radio", audio=WAV_BYTES)]
    kept = _voice(alice, "keeper", audio=WAV_BYTES)
    paths = [_audio_path(media_root, voice) for voice in doomed]
    assert all(path.exists() for path in paths)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            _changelist(),
            {
                "action": "delete_selected",
                "_selected_action": [str(voice.pk) for voice in doomed],
                "post": "yes",
            },
        )
    assert response.status_code == 302
    assert list(Voice.objects.all()) == [kept]
    assert not any(path.exists() for path in paths)
    assert _audio_path(media_root, kept).exists()


def test_the_change_page_has_an_audio_player(admin_client, alice, media_root):
    voice = _voice(alice, "narrator", audio=WAV_BYTES)
    html = admin_client.get(reverse("admin:voices_voice_change", args=[voice.pk])).content.decode()
    audio_url = reverse("admin:voices_voice_audio", args=[voice.pk])
    assert f'<audio controls preload="metadata" src="{audio_url}">' in html
    # The storage path is not linked: media is not served, and the audio is private.
    assert voice.reference_audio.name not in html


def test_the_audio_view_serves_the_reference_audio_to_staff(admin_client, alice, media_root):
    voice = _voice(alice, "narrator", audio=WAV_BYTES)
    response = admin_client.get(reverse("admin:voices_voice_audio", args=[voice.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert b"".join(response.streaming_content) == WAV_BYTES


def test_the_audio_view_serves_staff_with_view_permission(client, alice, carol, media_root):
    voice = _voice(alice, "narrator", audio=WAV_BYTES)
    url = reverse("admin:voices_voice_audio", args=[voice.pk])
    client.force_login(carol)
    # Staff, but not allowed to see voices: refused.
    assert client.get(url).status_code == 403
    carol.user_permissions.add(Permission.objects.get(codename="view_voice"))
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == WAV_BYTES


def test_the_audio_view_refuses_non_staff(client, alice, media_root):
    voice = _voice(alice, "narrator", audio=WAV_BYTES)
    client.force_login(alice)
    response = client.get(reverse("admin:voices_voice_audio", args=[voice.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert WAV_BYTES not in response.content


def test_the_audio_view_is_a_404_without_a_file(admin_client, alice, media_root):
    without_audio = _voice(alice, "builtin-like")
    assert (
        admin_client.get(reverse("admin:voices_voice_audio", args=[without_audio.pk])).status_code
        == 404
    )
    lost = _voice(alice, "lost", audio=WAV_BYTES)
    _audio_path(media_root, lost).unlink()
    assert admin_client.get(reverse("admin:voices_voice_audio", args=[lost.pk])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_removes_their_voice_files(settings, tmp_path, alice):
    # given a voice of alice's with a stored file
    settings.MEDIA_ROOT = tmp_path
    voice = Voice(owner=alice, name="kept-until-alice-goes", kind="cloned", source="upload")
    voice.reference_audio.save("reference.wav", ContentFile(b"RIFF fake wav"), save=True)
    path = tmp_path / voice.reference_audio.name
    assert path.exists()
    # when alice is deleted (the voice goes by cascade)
    alice.delete()
    # then the file is gone too
    assert not Voice.objects.filter(pk=voice.pk).exists()
    assert not path.exists()
