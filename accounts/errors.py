"""What can go wrong with an account's own things (its API keys).

Each error carries a machine `code`, a `message` for people and the `field` it is about;
api/error_map.py gives it its HTTP answer, and the pages and commands show the message as is.
"""

from enum import StrEnum


class AccountErrorCode(StrEnum):
    API_KEY_LIMIT_REACHED = "api_key_limit_reached"


class AccountError(Exception):
    code: AccountErrorCode

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ApiKeyLimitReached(AccountError):
    """The user already has as many active keys as API_KEYS_PER_USER_MAX allows."""

    code = AccountErrorCode.API_KEY_LIMIT_REACHED

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This account already has {limit} active API key{'s' if limit != 1 else ''}, "
            "the most one account may have: revoke one before creating another."
        )
        self.limit = limit
