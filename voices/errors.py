"""What can go wrong with a voice a caller names: it is not theirs to see, touch or remove.

Each error carries a machine `code`, a `message` for people and the `field` it is about:
`name_or_id`, the argument by which the caller named the voice. Another user's private voice
is reported exactly like no voice at all.
"""

from collections.abc import Sequence
from enum import StrEnum


class VoiceErrorCode(StrEnum):
    NOT_FOUND = "voice_not_found"
    NOT_OWNER = "not_owner"
    PROTECTED = "voice_protected"
    CONSENT_IN_USE = "consent_in_use"
    QUOTA_EXCEEDED = "quota_exceeded"


class VoiceError(Exception):
    code: VoiceErrorCode

    def __init__(self, message: str, *, field: str | None = "name_or_id") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class VoiceNotFound(VoiceError):
    code = VoiceErrorCode.NOT_FOUND

    def __init__(self, name_or_id: str) -> None:
        super().__init__(f"No voice '{name_or_id}'.")


class VoiceProtected(VoiceError):
    """A standard voice: part of the server, never removed."""

    code = VoiceErrorCode.PROTECTED

    def __init__(self) -> None:
        super().__init__("Standard voices cannot be deleted.")


class NotVoiceOwner(VoiceError):
    """The voice is visible to the caller (public or built in) but someone else's."""

    code = VoiceErrorCode.NOT_OWNER

    def __init__(self) -> None:
        super().__init__("Only the owner can delete this voice.")


class ConsentInUse(VoiceError):
    """A voice consent that voices were made with: the evidence of their consent stays for as
    long as they do. The message names them (at most a few), so the caller knows what to delete
    first."""

    code = VoiceErrorCode.CONSENT_IN_USE
    _NAMED = 10

    def __init__(
        self,
        consent_id: str,
        voices: list[tuple[str, str]],
        *,
        jobs: Sequence[tuple[str, str]] = (),
    ) -> None:
        """`voices` and `jobs` (still making a voice with it) as (name, id) pairs."""
        named = [f"'{name}' ({voice_id})" for name, voice_id in voices]
        named += [f"'{name}' (being made by job {job_id})" for name, job_id in jobs]
        listed = ", ".join(named[: self._NAMED])
        if len(named) > self._NAMED:
            listed += f" and {len(named) - self._NAMED} more"
        super().__init__(
            f"The voice consent '{consent_id}' is the consent on record for the voices {listed}: "
            "delete those voices first.",
            field="consent_id",
        )
        self.voice_ids = [voice_id for _, voice_id in voices]


class QuotaExceeded(VoiceError):
    """The owner's storage is full: as many voices or consents as one user may keep, or the
    bytes they may store. Deleting something makes room."""

    code = VoiceErrorCode.QUOTA_EXCEEDED

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
