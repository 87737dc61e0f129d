"""Users, teams, company numbers and API tokens.

API tokens are 32 random bytes, so a plain SHA-256 of the secret is safe to
store, unlike a password. Only that hash and the first characters of the
secret, which tell tokens apart in a listing, are kept.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import ROLES
from capture.errors import Conflict, InvalidInput, NotFound
from capture.identity import normalize_phone
from capture.models import (
    ApiToken,
    CompanyNumber,
    ContactPoint,
    Team,
    User,
    utcnow,
)

TOKEN_PREFIX = "tl_"
# Characters of a token shown in listings, "tl_" included.
SHOWN_CHARACTERS = 8


async def team_named(session: AsyncSession, name: str) -> Team:
    """Return the team called `name`, creating it if needed."""
    name = name.strip()
    if not 0 < len(name) <= 200:
        raise InvalidInput("team name must be 1 to 200 characters", "team")
    team = await session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        await session.flush()
    return team


async def add_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    role: str,
    default_region: str,
    phone: str | None = None,
    team: str | None = None,
    client_identity: str | None = None,
    password_hash: str | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(f"email {email!r} is not an email address", "email")
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", "role")
    if len(email) > 320:
        raise InvalidInput("email is longer than 320 characters", "email")
    if not name.strip():
        raise InvalidInput("name is empty", "name")
    if len(name.strip()) > 200:
        raise InvalidInput("name is longer than 200 characters", "name")
    number = None
    if phone:
        number = normalize_phone(phone, default_region)
        if number is None:
            raise InvalidInput(f"phone {phone!r} is not a valid number", "phone")
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"a user with email {email} exists", "email")
    if number:
        await _check_phone_free(session, number)
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        phone=number,
        client_identity=client_identity,
        team_id=(await team_named(session, team)).id if team else None,
        password_hash=password_hash,
    )
    session.add(user)
    await session.flush()
    return user


async def _check_phone_free(session: AsyncSession, number: str) -> None:
    """Reject a rep's phone that would make calls match the wrong party."""
    if await session.scalar(select(User.id).where(User.phone == number)):
        raise Conflict("another user has this phone number", "phone")
    if await session.scalar(
        select(CompanyNumber.id).where(CompanyNumber.phone == number)
    ):
        raise Conflict("this phone number is one of the company's numbers", "phone")
    if await session.scalar(
        select(ContactPoint.id).where(
            ContactPoint.kind == "phone", ContactPoint.value == number
        )
    ):
        raise Conflict("this phone number belongs to a customer", "phone")


async def add_company_number(
    session: AsyncSession, number: str, label: str = ""
) -> None:
    if await session.scalar(
        select(CompanyNumber.id).where(CompanyNumber.phone == number)
    ):
        return
    session.add(CompanyNumber(phone=number, label=label))
    await session.flush()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def user_by_email(session: AsyncSession, email: str) -> User:
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email}", "user")
    return user


async def create_token(
    session: AsyncSession, email: str, label: str = ""
) -> tuple[str, ApiToken]:
    """Create an API token for the user; return the secret and its row.

    Only the hash of the secret is stored, so this is the one time it is seen.
    """
    user = await user_by_email(session, email)
    if not user.active:
        raise InvalidInput(f"user {user.email} is deactivated", "user")
    if len(label) > 100:
        raise InvalidInput("label is longer than 100 characters", "label")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        token_hash=hash_token(secret),
        prefix=secret[:SHOWN_CHARACTERS],
        label=label.strip(),
    )
    session.add(token)
    await session.flush()
    return secret, token


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    query = (
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == hash_token(token),
            ApiToken.revoked_at.is_(None),
            User.active,
        )
    )
    return await session.scalar(query)


async def list_tokens(session: AsyncSession, email: str) -> list[ApiToken]:
    user = await user_by_email(session, email)
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return list((await session.scalars(query)).all())


async def token_by_secret(session: AsyncSession, secret: str) -> ApiToken | None:
    return await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(secret))
    )


async def revoke_token_id(session: AsyncSession, token_id: int) -> ApiToken:
    """Revoke a token by id; revoking a revoked token changes nothing."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id}", "id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def set_password(session: AsyncSession, user: User, password_hash: str) -> None:
    """Store a new password hash and end the user's other login sessions."""
    user.password_hash = password_hash
    user.session_version += 1
    await session.flush()


async def list_users(session: AsyncSession) -> list[User]:
    query = select(User).order_by(User.active.desc(), User.name, User.id)
    return list((await session.scalars(query)).all())


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", "id")
    return user


async def update_user(
    session: AsyncSession, user: User, *, role: str, team: str | None
) -> dict[str, list[object]]:
    """Change role and team; return the changes as {field: [old, new]}."""
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", "role")
    current = await session.get(Team, user.team_id) if user.team_id else None
    old_team = current.name if current else None
    new_team_id = (await team_named(session, team)).id if team else None
    changes: dict[str, list[object]] = {}
    if role != user.role:
        changes["role"] = [user.role, role]
        user.role = role
    if new_team_id != user.team_id:
        changes["team"] = [old_team, team]
        user.team_id = new_team_id
    await session.flush()
    return changes


async def deactivate_user(session: AsyncSession, user: User) -> int:
    """Deactivate the user, end their sessions and revoke their tokens.

    Return the number of tokens revoked.
    """
    user.active = False
    user.session_version += 1
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


async def activate_user(session: AsyncSession, user: User) -> None:
    """Let the user log in again; revoked tokens stay revoked."""
    user.active = True
    await session.flush()
