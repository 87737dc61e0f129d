"""Logins with a lockout that grows after repeated failures.

Failures are counted per email address, whether or not a user has it. The
response for an unknown address is the same as for a wrong password, so
the login form does not reveal which addresses exist.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from capture import audit
from capture.db import transaction
from capture.models import LoginThrottle, User, utcnow
from capture.passwords import hash_password_async, needs_rehash, verify_password_async

log = logging.getLogger(__name__)

# The lockout doubles with each failure past the limit, up to this factor.
MAX_LOCKOUT_FACTOR = 64


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int
    lockout_seconds: int

    @property
    def forget_after(self) -> timedelta:
        """Failures older than the longest lockout no longer count."""
        return timedelta(seconds=self.lockout_seconds * MAX_LOCKOUT_FACTOR)

    def lockout(self, failures: int) -> timedelta | None:
        if failures < self.max_failures:
            return None
        factor = min(2 ** (failures - self.max_failures), MAX_LOCKOUT_FACTOR)
        return timedelta(seconds=self.lockout_seconds * factor)


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    # Seconds until the email may try again; 0 when it is not locked.
    retry_after: int = 0


def email_key(email: str) -> str:
    return hashlib.sha256(b"login:" + normalize_email(email).encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def authenticate(
    sessions: async_sessionmaker[AsyncSession],
    email: str,
    password: str,
    policy: LoginPolicy,
    *,
    remote: str = "",
) -> LoginResult:
    """Check an email and password, count a failure, and audit the attempt."""
    key = email_key(email)
    now = utcnow()
    async with sessions() as session:
        throttle = await session.get(LoginThrottle, key)
        user = await session.scalar(
            select(User).where(User.email == normalize_email(email))
        )
    if throttle is not None and throttle.locked_until and throttle.locked_until > now:
        retry_after = _seconds_until(throttle.locked_until, now)
        async with transaction(sessions) as session:
            _audit_failure(session, user, "locked", remote)
        log.warning("login rejected: email locked for %s s", retry_after)
        return LoginResult(None, retry_after)

    usable = user is not None and user.active
    matched = await verify_password_async(
        user.password_hash if usable and user else None, password
    )
    if not matched:
        reason = "wrong password" if usable else "unknown or inactive user"
        retry_after = await _count_failure(sessions, key, policy, user, reason, remote)
        log.warning("login failed (user id %s)", user.id if usable and user else None)
        return LoginResult(None, retry_after)

    assert user is not None
    rehashed = None
    if user.password_hash and needs_rehash(user.password_hash):
        rehashed = await hash_password_async(password)
    async with transaction(sessions) as session:
        await session.execute(
            delete(LoginThrottle).where(LoginThrottle.email_hash == key)
        )
        if rehashed:
            await session.execute(
                update(User).where(User.id == user.id).values(password_hash=rehashed)
            )
        audit.record(
            session,
            audit.LOGIN,
            actor=user,
            target_type="user",
            target_id=user.id,
            remote=remote,
        )
    log.info("user %s logged in", user.id)
    return LoginResult(user)


async def verify_current_password(
    sessions: async_sessionmaker[AsyncSession],
    user: User,
    password: str,
    policy: LoginPolicy,
    *,
    remote: str = "",
) -> LoginResult:
    """Check a logged-in user's password before a change.

    Failures count towards the same lockout as logins, so a stolen session
    cannot be used to guess the password.
    """
    key = email_key(user.email)
    now = utcnow()
    async with sessions() as session:
        throttle = await session.get(LoginThrottle, key)
    if throttle is not None and throttle.locked_until and throttle.locked_until > now:
        return LoginResult(None, _seconds_until(throttle.locked_until, now))
    if await verify_password_async(user.password_hash, password):
        return LoginResult(user)
    reason = "wrong current password"
    retry_after = await _count_failure(sessions, key, policy, user, reason, remote)
    return LoginResult(None, retry_after)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


def _audit_failure(
    session: AsyncSession, user: User | None, reason: str, remote: str
) -> None:
    audit.record(
        session,
        audit.LOGIN_FAILED,
        actor=None,
        target_type="user" if user else "",
        target_id=user.id if user else "",
        detail={"reason": reason},
        remote=remote,
    )


async def _count_failure(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    policy: LoginPolicy,
    user: User | None,
    reason: str,
    remote: str,
) -> int:
    """Add a failure for `key`, lock it past the limit; return the lock in seconds."""
    now = utcnow()
    async with transaction(sessions) as session:
        throttle = await session.get(LoginThrottle, key, with_for_update=True)
        if throttle is None:
            throttle = LoginThrottle(email_hash=key, failures=0, last_failure_at=now)
            try:
                async with session.begin_nested():
                    session.add(throttle)
            except IntegrityError:
                # Another request added the row first; count on that row.
                throttle = await session.get(
                    LoginThrottle, key, with_for_update=True, populate_existing=True
                )
                assert throttle is not None
        elif now - throttle.last_failure_at > policy.forget_after:
            throttle.failures = 0
        throttle.failures += 1
        throttle.last_failure_at = now
        lockout = policy.lockout(throttle.failures)
        throttle.locked_until = now + lockout if lockout else None
        _audit_failure(session, user, reason, remote)
    return int(lockout.total_seconds()) if lockout else 0
