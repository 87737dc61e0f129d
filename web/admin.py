"""Admin pages: users (add, role and team, password, deactivate) and the audit log."""

from __future__ import annotations

import json
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import audit
from capture.access import ROLES
from capture.accounts import (
    activate_user,
    add_user,
    deactivate_user,
    get_user,
    list_users,
    set_password,
    update_user,
)
from capture.db import transaction
from capture.errors import Conflict, DomainError, InvalidInput, NotFound
from capture.models import AuditEvent, Team, User
from capture.passwords import MIN_LENGTH, hash_password_async
from capture.queries import id_cursor, page_size, parse_id
from web.access import require_admin, user_of
from web.auth import remote_of
from web.domain_messages import translate_message
from web.i18n import LOCALES
from web.inputs import form_text
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()
USERS = "/admin/users"
AUDIT_PAGE = 100


def _user_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"user {raw!r} not found", "id")
    return number


async def _users_page(
    request: web.Request,
    status: int = 200,
    error: DomainError | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        users = await list_users(session)
        teams = dict((await session.execute(select(Team.id, Team.name))).all())
    context = {
        "users": users,
        "teams": teams,
        "roles": ROLES,
        "min_length": MIN_LENGTH,
        "error": translate_message(error.message) if error else None,
        "field": error.field if error else None,
        "values": values or {},
    }
    response = aiohttp_jinja2.render_template("admin_users.html", request, context)
    response.set_status(status)
    return response


@routes.get(USERS)
async def users(request: web.Request) -> web.Response:
    require_admin(request)
    return await _users_page(request)


@routes.post(USERS)
async def create_user(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    values = {
        "email": form_text(form, "email", 320).strip(),
        "name": form_text(form, "name", 200).strip(),
        "role": form_text(form, "role", 16),
        "team": form_text(form, "team", 200).strip(),
        "phone": form_text(form, "phone", 40).strip(),
    }
    password = form_text(form, "password", None)
    try:
        password_hash = await hash_password_async(password)
        async with transaction(request.app[DATABASE].writes) as session:
            user = await add_user(
                session,
                email=values["email"],
                name=values["name"],
                role=values["role"],
                default_region=request.app[SETTINGS].default_region,
                phone=values["phone"] or None,
                team=values["team"] or None,
                password_hash=password_hash,
            )
            _audit(
                request,
                session,
                audit.USER_CREATED,
                user,
                {"role": user.role, "team": values["team"] or None},
            )
    except DomainError as error:
        status = 409 if isinstance(error, Conflict) else 400
        return await _users_page(request, status, error, values)
    raise web.HTTPSeeOther(USERS)


@routes.post(USERS + "/{id}")
async def change_user(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    role = form_text(form, "role", 16)
    team = form_text(form, "team", 200).strip()
    locale = form_text(form, "locale", 16)
    try:
        if locale and locale not in LOCALES:
            raise InvalidInput(
                f"locale {locale!r} is not one of {', '.join(LOCALES)}", "locale"
            )
        async with transaction(request.app[DATABASE].writes) as session:
            user = await get_user(session, _user_id(request))
            if user.role == "admin" and role != "admin":
                await _keep_an_admin(session, user, "role")
            changes = await update_user(session, user, role=role, team=team or None)
            if locale and locale != user.locale:
                changes["locale"] = [user.locale, locale]
                user.locale = locale
            if changes:
                _audit(request, session, audit.USER_UPDATED, user, changes)
    except NotFound:
        raise
    except DomainError as error:
        return await _users_page(request, 400, error)
    raise web.HTTPSeeOther(USERS)


@routes.post(USERS + "/{id}/password")
async def reset_password(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    password = form_text(form, "password", None)
    try:
        password_hash = await hash_password_async(password)
        async with transaction(request.app[DATABASE].writes) as session:
            user = await get_user(session, _user_id(request))
            await set_password(session, user, password_hash)
            _audit(request, session, audit.PASSWORD_CHANGED, user, {"by": "admin"})
    except NotFound:
        raise
    except DomainError as error:
        return await _users_page(request, 400, error)
    raise web.HTTPSeeOther(USERS)


@routes.post(USERS + "/{id}/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            user = await get_user(session, _user_id(request))
            if user.active:
                await _keep_an_admin(session, user, "active")
                revoked = await deactivate_user(session, user)
                _audit(
                    request,
                    session,
                    audit.USER_DEACTIVATED,
                    user,
                    {"tokens_revoked": revoked},
                )
    except NotFound:
        raise
    except DomainError as error:
        return await _users_page(request, 400, error)
    raise web.HTTPSeeOther(USERS)


@routes.post(USERS + "/{id}/activate")
async def activate(request: web.Request) -> web.Response:
    require_admin(request)
    async with transaction(request.app[DATABASE].writes) as session:
        user = await get_user(session, _user_id(request))
        if not user.active:
            await activate_user(session, user)
            _audit(request, session, audit.USER_ACTIVATED, user, {})
    raise web.HTTPSeeOther(USERS)


async def _keep_an_admin(session: AsyncSession, user: User, field: str) -> None:
    """Raise InvalidInput when `user` is the last active admin."""
    if user.role != "admin" or not user.active:
        return
    admins = await session.scalar(
        select(func.count()).where(User.role == "admin", User.active)
    )
    if (admins or 0) <= 1:
        raise InvalidInput(
            f"{user.email} is the last active admin; make another user admin first",
            field,
        )


def _audit(
    request: web.Request,
    session: AsyncSession,
    action: str,
    user: User,
    detail: dict[str, Any],
) -> None:
    audit.record(
        session,
        action,
        actor=user_of(request),
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, **detail},
        remote=remote_of(request),
    )


def _audit_filters(request: web.Request) -> tuple[int | None, int, str | None]:
    action = request.query.get("action") or None
    if action is not None and action not in audit.ACTIONS:
        raise InvalidInput(
            f"action {action!r} is not one of {', '.join(audit.ACTIONS)}", "action"
        )
    before = id_cursor(request.query.get("cursor"))
    return before, page_size(request.query.get("limit"), AUDIT_PAGE), action


async def _audit_events(
    request: web.Request,
) -> tuple[list[AuditEvent], str | None, str | None]:
    require_admin(request)
    before, limit, action = _audit_filters(request)
    async with request.app[DATABASE].reads() as session:
        found = await audit.recent_events(
            session, before_id=before, limit=limit, action=action
        )
    page = found[:limit]
    following = str(page[-1].id) if len(found) > limit else None
    return page, following, action


@routes.get("/admin/audit")
@aiohttp_jinja2.template("audit.html")
async def audit_page(request: web.Request) -> dict[str, Any]:
    events, following, action = await _audit_events(request)
    return {
        "events": events,
        "next": following,
        "action": action,
        "actions": audit.ACTIONS,
    }


@routes.get("/api/v1/audit")
async def audit_api(request: web.Request) -> web.Response:
    events, following, _ = await _audit_events(request)
    zone = request.app[SETTINGS].zone
    items = [
        {
            "id": event.id,
            "occurred_at": event.occurred_at.astimezone(zone).isoformat(),
            "actor_id": event.actor_id,
            "actor": event.actor_email or None,
            "action": event.action,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "detail": json.loads(event.detail),
            "remote": event.remote,
        }
        for event in events
    ]
    return web.json_response({"items": items, "next": following})
