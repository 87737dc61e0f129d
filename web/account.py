"""Login, logout and password change pages."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session
from sqlalchemy import update

from capture import audit
from capture.accounts import get_user, set_password
from capture.db import transaction
from capture.errors import InvalidInput
from capture.logins import LoginPolicy, authenticate, verify_current_password
from capture.models import User
from capture.passwords import MIN_LENGTH, check_new_password, hash_password_async
from web.access import user_of
from web.auth import VERSION, end_session, remote_of, start_session
from web.domain_messages import translate_message
from web.i18n import COOKIE_MAX_AGE, COOKIE_NAME, LOCALES
from web.i18n import gettext as _
from web.i18n import gettext_noop as N_
from web.inputs import form_text
from web.keys import DATABASE, SETTINGS, USER
from web.runtime import current_settings

routes = web.RouteTableDef()
HOME = "/customers"


async def login_policy(request: web.Request) -> LoginPolicy:
    settings = await current_settings(request)
    return LoginPolicy(settings.login_max_failures, settings.login_lockout_seconds)


def safe_next(raw: str | None) -> str:
    """Return `raw` if it is a path on this site, else the home page.

    `//host` and `/\\host` are read by browsers as other hosts, so they are
    rejected to keep the login form from redirecting off site.
    """
    if (
        not raw
        or not raw.startswith("/")
        or raw.startswith(("//", "/\\"))
        or not raw.isprintable()
    ):
        return HOME
    return raw


def _render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context)
    response.set_status(status)
    return response


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    return _render(request, "login.html", {"next": next_path, "email": ""})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    email = form_text(form, "email", 320).strip()
    password = form_text(form, "password", None)
    next_path = safe_next(form_text(form, "next", 2000))
    context: dict[str, Any] = {"next": next_path, "email": email}
    if not email or not password:
        field = "email" if not email else "password"
        context.update(error=_("%(field)s is missing") % {"field": field}, field=field)
        return _render(request, "login.html", context, 400)
    result = await authenticate(
        request.app[DATABASE].writes,
        email,
        password,
        await login_policy(request),
        remote=remote_of(request),
    )
    if result.user is None:
        message = _("email or password is wrong")
        status = 401
        if result.retry_after:
            message = _(
                "email or password is wrong; after too many failures this "
                "email is locked for %(seconds)s s"
            ) % {"seconds": result.retry_after}
            status = 429
        context.update(error=message, field="password")
        response = _render(request, "login.html", context, status)
        if result.retry_after:
            response.headers["Retry-After"] = str(result.retry_after)
        return response
    await start_session(request, result.user)
    raise web.HTTPSeeOther(next_path)


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    user = user_of(request)
    async with transaction(request.app[DATABASE].writes) as session:
        # Sessions live in the cookie, so a copy of it would outlive a plain
        # logout; raising the version ends every session of the user.
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(session_version=User.session_version + 1)
        )
        audit.record(
            session,
            audit.LOGOUT,
            actor=user,
            target_type="user",
            target_id=user.id,
            remote=remote_of(request),
        )
    await end_session(request)
    raise web.HTTPSeeOther("/login")


@routes.get("/account/password")
async def password_form(request: web.Request) -> web.Response:
    return _render(request, "password.html", {"min_length": MIN_LENGTH})


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.Response:
    user = user_of(request)
    form = await request.post()
    current = form_text(form, "current_password", None)
    new = form_text(form, "new_password", None)
    confirm = form_text(form, "confirm_password", None)
    context: dict[str, Any] = {"min_length": MIN_LENGTH}
    try:
        check_new_password(new, "new_password")
        if confirm != new:
            raise InvalidInput(
                N_("confirm_password does not match new_password"), "confirm_password"
            )
    except InvalidInput as error:
        context.update(error=translate_message(error.message), field=error.field)
        return _render(request, "password.html", context, 400)

    checked = await verify_current_password(
        request.app[DATABASE].writes,
        user,
        current,
        await login_policy(request),
        remote=remote_of(request),
    )
    if checked.user is None:
        message = _("current_password is wrong")
        if checked.retry_after:
            message = _("current_password is wrong; try again in %(seconds)s s") % {
                "seconds": checked.retry_after
            }
        context.update(error=message, field="current_password")
        return _render(request, "password.html", context, 400)

    password_hash = await hash_password_async(new)
    async with transaction(request.app[DATABASE].writes) as session:
        stored = await get_user(session, user.id)
        await set_password(session, stored, password_hash)
        audit.record(
            session,
            audit.PASSWORD_CHANGED,
            actor=user,
            target_type="user",
            target_id=user.id,
            remote=remote_of(request),
        )
        version = stored.session_version
    # The change ends every other session of the user; this one goes on.
    (await get_session(request))[VERSION] = version
    context["changed"] = True
    return _render(request, "password.html", context)


@routes.post("/account/language")
async def change_language(request: web.Request) -> web.Response:
    """Store the chosen page language and go back to the page it was chosen on.

    A logged-in user keeps the choice in their `locale`; the cookie carries
    it to the login page, which has no user yet.
    """
    form = await request.post()
    locale = form_text(form, "locale", 16)
    if locale not in LOCALES:
        raise InvalidInput(
            f"locale {locale[:20]!r} is not one of {', '.join(LOCALES)}", "locale"
        )
    next_path = safe_next(form_text(form, "next", 2000))
    user = request.get(USER)
    if user is not None and user.locale != locale:
        async with transaction(request.app[DATABASE].writes) as session:
            stored = await get_user(session, user.id)
            stored.locale = locale
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        COOKIE_NAME,
        locale,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].public_url.startswith("https://"),
    )
    raise response
