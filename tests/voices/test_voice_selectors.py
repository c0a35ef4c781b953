"""Resolving a voice by id or name: own voices first, then public; others' private never."""

import uuid

import pytest
from django.db import IntegrityError

from voices.models import Voice
from voices.selectors import voice_resolve, voices_visible_to

pytestmark = pytest.mark.django_db


def _voice(owner, name: str, *, public: bool = False) -> Voice:
    return Voice.objects.create(
        owner=owner, name=name, kind=Voice.Kind.CLONED, source=Voice.Source.UPLOAD, is_public=public
    )


def test_it_resolves_an_own_voice_by_name_and_by_id(alice):
    voice = _voice(alice, "narrator")
    assert voice_resolve(user=alice, name_or_id="narrator") == voice
    assert voice_resolve(user=alice, name_or_id=str(voice.id)) == voice


def test_another_users_private_voice_does_not_exist(alice, bob):
    voice = _voice(alice, "narrator")
    assert voice_resolve(user=bob, name_or_id="narrator") is None
    assert voice_resolve(user=bob, name_or_id=str(voice.id)) is None
    assert voice not in voices_visible_to(bob)


def test_a_public_voice_is_visible_to_everyone(alice, bob):
    voice = _voice(alice, "announcer", public=True)
    assert voice_resolve(user=bob, name_or_id="announcer") == voice
    assert voice_resolve(user=None, name_or_id=str(voice.id)) == voice


def test_own_voice_wins_over_a_public_voice_of_the_same_name(alice, bob):
    _voice(alice, "narrator", public=True)
    bobs = _voice(bob, "narrator")
    assert voice_resolve(user=bob, name_or_id="narrator") == bobs


def test_an_unknown_id_resolves_to_nothing(alice):
    assert voice_resolve(user=alice, name_or_id=str(uuid.uuid4())) is None


def test_voice_names_are_unique_per_owner(alice, bob):
    _voice(alice, "narrator")
    _voice(bob, "narrator")
    with pytest.raises(IntegrityError):
        _voice(alice, "narrator")
