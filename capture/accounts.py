"""Users, teams, company numbers and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.errors import Conflict, InvalidInput
from capture.identity import normalize_phone
from capture.models import ApiToken, CompanyNumber, Team, User, utcnow

ROLES = ("rep", "manager", "ops", "admin")


async def team_named(session: AsyncSession, name: str) -> Team:
    """Return the team called `name`, creating it if needed."""
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
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(f"email {email!r} is not an email address", "email")
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", "role")
    if not name.strip():
        raise InvalidInput("name is empty", "name")
    number = None
    if phone:
        number = normalize_phone(phone, default_region)
        if number is None:
            raise InvalidInput(f"phone {phone!r} is not a valid number", "phone")
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"a user with email {email} exists", "email")
    if number and await session.scalar(select(User.id).where(User.phone == number)):
        raise Conflict("another user has this phone number", "phone")
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        phone=number,
        client_identity=client_identity,
        team_id=(await team_named(session, team)).id if team else None,
    )
    session.add(user)
    await session.flush()
    return user


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


async def create_token(session: AsyncSession, email: str) -> str:
    """Create an API token for the user; only its hash is stored."""
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise InvalidInput(f"no user with email {email}", "user")
    token = "tl_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    await session.flush()
    return token


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


async def revoke_token(session: AsyncSession, token: str) -> bool:
    row = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    )
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
