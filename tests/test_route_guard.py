"""Every route outside the short public list needs a login or a token.

The routes are read from the application's router, so a route added later
is checked without changing this file.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_access import ADMIN_PAGES
from yarl import URL

from web.app import create_app

# Routes that respond without a login. Webhooks check their own signature.
PUBLIC = {
    "/healthz",
    "/metrics",
    "/login",
    "/account/language",
    "/static",
}
PUBLIC_PREFIXES = ("/twilio/", "/email/")
# Admin pages open to more roles than admins, with their own role tests:
# custom fields for managers (test_access.py), the webhook ledger for ops
# (test_ledger.py).
OTHER_RULES = {"/admin/fields", "/admin/webhooks"}


def routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method != "HEAD":
            found.append((route.method, path))
    return sorted(set(found))


def concrete(path: str) -> str:
    """Fill each path variable with a value that could exist."""
    return re.sub(r"\{(\w+)\}", lambda match: _sample(match.group(1)), path)


def _sample(name: str) -> str:
    if name.endswith("sid"):
        return "CA" + "0" * 32
    return "1"


async def test_private_routes_reject_anonymous(client: Any) -> None:
    checked = 0
    for method, path in routes(client.app):
        if path in PUBLIC or path.startswith(PUBLIC_PREFIXES):
            continue
        url = concrete(path)
        response = await client.request(method, url, allow_redirects=False)
        checked += 1
        if path.startswith("/api/"):
            assert response.status == 401, (method, url, response.status)
        elif method == "GET":
            assert response.status == 303, (method, url, response.status)
            assert response.headers["Location"].startswith("/login"), url
        else:
            # Without a session there is no CSRF token, so a form post stops there.
            assert response.status in (303, 403), (method, url, response.status)

    assert checked > 40


async def test_admin_pages_are_in_the_access_matrix(client: Any) -> None:
    admin_pages = {
        path
        for method, path in routes(client.app)
        if method == "GET" and path.startswith("/admin/")
    }

    assert admin_pages - OTHER_RULES <= set(ADMIN_PAGES)


def test_route_list_reads_the_router(settings: Any) -> None:
    listed = routes(create_app(settings, run_worker=False))

    assert ("POST", "/twilio/voice/status") in listed
    assert ("GET", "/customers/{id}") in listed


@pytest.mark.parametrize(
    "path",
    [
        "/recordings/..%2F..%2Fetc%2Fpasswd.wav",
        "/recordings/RE..%2F..%2Ftouchline.db.wav",
        "/recordings/%2e%2e%2f%2e%2e%2fetc%2fpasswd.wav",
        "/static/../web/app.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2F..%2Fpyproject.toml",
        "/static/%252e%252e/app.py",
    ],
)
async def test_file_paths_stay_in_their_folders(
    client: Any, as_admin: str, path: str
) -> None:
    target = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    response = await client.session.get(target, allow_redirects=False)
    body = await response.read()

    assert response.status in (400, 403, 404), response.status
    assert b"[project]" not in body
    assert b"root:" not in body
    assert b"SQLite format" not in body
    assert b"def create_app" not in body
