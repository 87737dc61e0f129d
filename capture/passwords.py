"""Password hashing with Argon2id, off the event loop.

argon2-cffi's default parameters (the RFC 9106 low-memory profile: 64 MiB,
3 passes, 4 lanes) make each hash take tens of milliseconds of CPU or more,
so hashing and checking run in a thread.
"""

from __future__ import annotations

import asyncio
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from capture.errors import InvalidInput

MIN_LENGTH = 10
# Hashing cost grows with length; longer input is rejected before hashing.
MAX_LENGTH = 1024

_hasher = PasswordHasher()
# Checked when the user has no password or does not exist, so that such a
# login takes as long as a wrong password and its timing reveals nothing.
_UNUSABLE_HASH = _hasher.hash("unusable password for timing")


def check_new_password(password: str, field: str = "password") -> None:
    """Raise InvalidInput when `password` is too short, too long or not typable."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"{field} is shorter than {MIN_LENGTH} characters", field)
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"{field} is longer than {MAX_LENGTH} characters", field)
    if any(unicodedata.category(character) == "Cc" for character in password):
        # NUL and other control characters cannot be typed into a login form.
        raise InvalidInput(f"{field} contains control characters", field)


def hash_password(password: str) -> str:
    check_new_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check `password`; a missing or malformed hash never matches."""
    usable = password_hash is not None and len(password) <= MAX_LENGTH
    try:
        matched = _hasher.verify(
            password_hash if usable and password_hash else _UNUSABLE_HASH,
            password[:MAX_LENGTH],
        )
    except (VerificationError, InvalidHashError):
        return False
    return usable and matched


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password_async(password: str) -> str:
    check_new_password(password)
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)
