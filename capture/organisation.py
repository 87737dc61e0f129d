"""Teams and the company's Twilio numbers, as the admin pages change them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.errors import Conflict, InvalidInput, NotFound
from capture.identity import normalize_phone
from capture.models import CompanyNumber, ContactPoint, Customer, Team, User

MAX_TEAM_NAME = 200
MAX_LABEL = 200


@dataclass(frozen=True)
class TeamRow:
    team: Team
    members: int
    active_members: int


async def list_teams(session: AsyncSession) -> list[TeamRow]:
    """Return every team by name with its member counts."""
    active = func.count(User.id).filter(User.active)
    query = (
        select(Team, func.count(User.id), active)
        .outerjoin(User, User.team_id == Team.id)
        .group_by(Team.id)
        .order_by(Team.name)
    )
    rows = (await session.execute(query)).all()
    return [TeamRow(team, int(members), int(live)) for team, members, live in rows]


def _team_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise InvalidInput("name is empty", "name")
    if len(name) > MAX_TEAM_NAME:
        raise InvalidInput(f"name is longer than {MAX_TEAM_NAME} characters", "name")
    return name


async def _reject_taken_name(
    session: AsyncSession, name: str, team_id: int | None = None
) -> None:
    # Case-insensitive, so "West" and "west" cannot both exist.
    query = select(Team.id).where(func.lower(Team.name) == name.lower())
    if team_id is not None:
        query = query.where(Team.id != team_id)
    if await session.scalar(query):
        raise Conflict(f"a team named {name!r} exists; choose another name", "name")


async def add_team(session: AsyncSession, raw_name: str) -> Team:
    name = _team_name(raw_name)
    await _reject_taken_name(session, name)
    team = Team(name=name)
    session.add(team)
    await session.flush()
    return team


async def get_team(session: AsyncSession, team_id: int) -> Team:
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found", "id")
    return team


async def rename_team(session: AsyncSession, team: Team, raw_name: str) -> str | None:
    """Rename the team; return the old name, or None when nothing changed."""
    name = _team_name(raw_name)
    if name == team.name:
        return None
    await _reject_taken_name(session, name, team.id)
    old = team.name
    team.name = name
    await session.flush()
    return old


async def list_numbers(session: AsyncSession) -> list[CompanyNumber]:
    query = select(CompanyNumber).order_by(CompanyNumber.phone)
    return list((await session.scalars(query)).all())


async def add_number(
    session: AsyncSession, raw_phone: str, label: str, default_region: str
) -> CompanyNumber:
    """Add a company number given in any format; store it in E.164.

    A rep's phone or a customer's number cannot also be a company number:
    calls with it would no longer belong to that rep or customer.
    """
    if not raw_phone.strip():
        raise InvalidInput("phone is empty", "phone")
    number = normalize_phone(raw_phone, default_region)
    if number is None:
        raise InvalidInput(
            f"phone {raw_phone[:40]!r} is not a valid number; "
            "give it with its country code, such as +1 415 555 0100",
            "phone",
        )
    label = label.strip()
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"label is longer than {MAX_LABEL} characters", "label")
    await _reject_used_number(session, number)
    row = CompanyNumber(phone=number, label=label)
    session.add(row)
    await session.flush()
    return row


async def _reject_used_number(session: AsyncSession, number: str) -> None:
    if await session.scalar(
        select(CompanyNumber.id).where(CompanyNumber.phone == number)
    ):
        raise Conflict(f"{number} is already a company number", "phone")
    user = await session.scalar(select(User).where(User.phone == number))
    if user is not None:
        raise Conflict(
            f"{number} is the phone of user {user.name} ({user.email}); "
            "change that user's phone first",
            "phone",
        )
    customer = await session.scalar(
        select(Customer)
        .join(ContactPoint, ContactPoint.customer_id == Customer.id)
        .where(ContactPoint.kind == "phone", ContactPoint.value == number)
        .limit(1)
    )
    if customer is not None:
        raise Conflict(
            f"{number} is a phone number of customer {customer.name} "
            f"(id {customer.id})",
            "phone",
        )


async def remove_number(session: AsyncSession, number_id: int) -> CompanyNumber:
    """Delete a company number and return the deleted row."""
    row = await session.get(CompanyNumber, number_id)
    if row is None:
        raise NotFound(f"company number {number_id} not found", "id")
    await session.delete(row)
    await session.flush()
    return row
