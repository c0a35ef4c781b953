"""What can go wrong with a voice a caller names: it is not theirs to see, touch or remove.

Each error carries a machine `code`, a `message` for people and the `field` it is about:
`name_or_id`, the argument by which the caller named the voice. Another user's private voice
is reported exactly like no voice at all.
"""

from enum import StrEnum


class VoiceErrorCode(StrEnum):
    NOT_FOUND = "voice_not_found"
    NOT_OWNER = "not_owner"
    PROTECTED = "voice_protected"


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
