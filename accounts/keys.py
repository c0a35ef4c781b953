"""The API key format: `sk-csm-` + 43 base62 characters of secret + a 6-character checksum.

256 bits of randomness. The checksum (CRC32 of the secret) lets a mistyped or made-up key be
refused without a database query, and the fixed prefix makes leaked keys easy to grep for.
Only the SHA-256 of a key is stored: a key is high-entropy, so a fast hash is enough.
"""

import hashlib
import secrets
import zlib

KEY_PREFIX = "sk-csm-"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_BYTES = 32
_SECRET_CHARS = 43  # 62**43 > 2**256
_CHECKSUM_CHARS = 6  # 62**6 > 2**32
KEY_LENGTH = len(KEY_PREFIX) + _SECRET_CHARS + _CHECKSUM_CHARS
# How much of a key is shown to identify it: the prefix and the first characters of the secret.
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 6


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    if number:
        raise ValueError("number too large for the width")
    return "".join(reversed(digits))


def _checksum(secret: str) -> str:
    return _base62(zlib.crc32(secret.encode("ascii")), _CHECKSUM_CHARS)


def key_generate() -> str:
    secret = _base62(int.from_bytes(secrets.token_bytes(_SECRET_BYTES), "big"), _SECRET_CHARS)
    return f"{KEY_PREFIX}{secret}{_checksum(secret)}"


def key_is_well_formed(key: str) -> bool:
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    body = key[len(KEY_PREFIX) :]
    if any(char not in _ALPHABET for char in body):
        return False
    secret, checksum = body[:_SECRET_CHARS], body[_SECRET_CHARS:]
    return secrets.compare_digest(_checksum(secret), checksum)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
