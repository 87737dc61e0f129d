"""Admin pages of the organisation: teams and the company's Twilio numbers."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from capture import audit
from capture.db import transaction
from capture.errors import Conflict, DomainError, NotFound
from capture.organisation import (
    add_number,
    add_team,
    get_team,
    list_numbers,
    list_teams,
    remove_number,
    rename_team,
)
from capture.queries import parse_id
from web.access import require_admin, user_of
from web.auth import remote_of
from web.inputs import form_text
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()
TEAMS = "/admin/teams"
NUMBERS = "/admin/numbers"
# Longer input is rejected by the domain checks with the field named; this
# bound only keeps a huge form field out of them.
MAX_INPUT = 1000


def _row_id(request: web.Request, kind: str) -> int:
    raw = request.match_info["id"]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"{kind} {raw[:20]!r} not found", "id")
    return number


def _render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    error: DomainError | None,
    values: dict[str, str] | None,
) -> web.Response:
    status = 200
    if error is not None:
        status = 409 if isinstance(error, Conflict) else 400
    context = {
        **context,
        "error": error.message if error else None,
        "field": error.field if error else None,
        "values": values or {},
    }
    response = aiohttp_jinja2.render_template(template, request, context)
    response.set_status(status)
    return response


def _audit(
    request: web.Request,
    session: AsyncSession,
    action: str,
    target_type: str,
    target_id: int,
    detail: dict[str, Any],
) -> None:
    audit.record(
        session,
        action,
        actor=user_of(request),
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        remote=remote_of(request),
    )


async def _teams_page(
    request: web.Request,
    error: DomainError | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        teams = await list_teams(session)
    return _render(request, "admin_teams.html", {"teams": teams}, error, values)


@routes.get(TEAMS)
async def teams(request: web.Request) -> web.Response:
    require_admin(request)
    return await _teams_page(request)


@routes.post(TEAMS)
async def create_team(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    name = form_text(form, "name", MAX_INPUT)
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            team = await add_team(session, name)
            detail = {"name": team.name}
            _audit(request, session, audit.TEAM_CREATED, "team", team.id, detail)
    except DomainError as error:
        return await _teams_page(request, error, {"name": name})
    raise web.HTTPSeeOther(TEAMS)


@routes.post(TEAMS + "/{id}")
async def change_team(request: web.Request) -> web.Response:
    require_admin(request)
    team_id = _row_id(request, "team")
    form = await request.post()
    name = form_text(form, "name", MAX_INPUT)
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            team = await get_team(session, team_id)
            old = await rename_team(session, team, name)
            if old is not None:
                detail = {"name": [old, team.name]}
                _audit(request, session, audit.TEAM_RENAMED, "team", team.id, detail)
    except NotFound:
        raise
    except DomainError as error:
        return await _teams_page(request, error, {"rename": str(team_id), "name": name})
    raise web.HTTPSeeOther(TEAMS)


async def _numbers_page(
    request: web.Request,
    error: DomainError | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        numbers = await list_numbers(session)
    context = {
        "numbers": numbers,
        "region": request.app[SETTINGS].default_region,
    }
    return _render(request, "admin_numbers.html", context, error, values)


@routes.get(NUMBERS)
async def numbers(request: web.Request) -> web.Response:
    require_admin(request)
    return await _numbers_page(request)


@routes.post(NUMBERS)
async def create_number(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    values = {
        "phone": form_text(form, "phone", MAX_INPUT),
        "label": form_text(form, "label", MAX_INPUT),
    }
    region = request.app[SETTINGS].default_region
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            row = await add_number(session, values["phone"], values["label"], region)
            detail = {"phone": row.phone, "label": row.label}
            _audit(request, session, audit.NUMBER_ADDED, "number", row.id, detail)
    except DomainError as error:
        return await _numbers_page(request, error, values)
    raise web.HTTPSeeOther(NUMBERS)


@routes.post(NUMBERS + "/{id}/remove")
async def delete_number(request: web.Request) -> web.Response:
    require_admin(request)
    number_id = _row_id(request, "company number")
    async with transaction(request.app[DATABASE].writes) as session:
        row = await remove_number(session, number_id)
        detail = {"phone": row.phone, "label": row.label}
        _audit(request, session, audit.NUMBER_REMOVED, "number", number_id, detail)
    raise web.HTTPSeeOther(NUMBERS)
