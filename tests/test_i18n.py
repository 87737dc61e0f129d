"""Page languages: catalogues, the template text check, locale choice and formats."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from conftest import ADMIN_EMAIL, csrf_of, login
from sqlalchemy import select, update

from capture.db import Database, transaction
from capture.demo_data import REPS
from capture.models import User
from web.i18n import LOCALE_DIR, accept_language, format_seconds, parse_locale

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "web" / "templates"
POT = LOCALE_DIR / "messages.pot"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdr]")
ANA = REPS[0]


def catalogue(locale: str) -> Any:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=locale)


def pot_ids() -> set[str]:
    with POT.open("rb") as source:
        return {message.id for message in read_po(source) if message.id}


def source_ids() -> set[str]:
    """Extract the messages of web/ as `make messages` does, via babel.cfg."""
    method_map = [
        ("web/**.py", "python"),
        ("web/templates/**.html", "jinja2"),
    ]
    options = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = extract_from_dir(
        str(ROOT), method_map=method_map, options_map=options, strip_comment_tags=True
    )
    return {message for _, _, message, _, _ in found if isinstance(message, str)}


def test_catalogue_covers_source() -> None:
    missing = source_ids() - pot_ids()

    assert not missing, f"run `make messages` and translate: {sorted(missing)}"


@pytest.mark.parametrize("locale", ["en", "zh_Hans"])
def test_catalogue_translates_every_message(locale: str) -> None:
    translated = {
        message.id: message.string for message in catalogue(locale) if message.id
    }

    untranslated = sorted(
        message for message in pot_ids() if not translated.get(message)
    )
    assert not untranslated, f"{locale} lacks translations of {untranslated}"


def test_catalogue_keeps_placeholders() -> None:
    for message in catalogue("zh_Hans"):
        if not message.id:
            continue
        expected = sorted(PLACEHOLDER.findall(message.id))
        assert sorted(PLACEHOLDER.findall(message.string)) == expected, message.id


def test_catalogue_uses_window_names() -> None:
    chinese = {message.id: message.string for message in catalogue("zh_Hans")}

    assert chinese["later today"] == "今天稍后"
    assert chinese["tonight"] == "今晚"
    assert chinese["this week"] == "本周内"
    assert chinese["next month"] == "下月"


# The template check: visible text must come from `_()` or `{% trans %}`.

JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
JINJA_TRANS = re.compile(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", re.DOTALL)
JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
SCRIPT = re.compile(r"<(script|style)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
TEXT_ATTRIBUTE = re.compile(
    r"""\b(placeholder|aria-label|title|alt)\s*=\s*(["'])(.*?)\2""", re.DOTALL
)
TAG = re.compile(r"<[^>]*>", re.DOTALL)
ENTITY = re.compile(r"&[#\w]+;")
# Names that read the same in every language.
UNTRANSLATED = {"Touchline"}


def visible_text(template: str) -> list[str]:
    """Return the words of `template` that a reader sees outside `_()`."""
    text = JINJA_COMMENT.sub(" ", template)
    text = JINJA_TRANS.sub(" ", text)
    text = JINJA_CODE.sub(" ", text)
    text = SCRIPT.sub(" ", text)
    attributes = [value for _, _, value in TEXT_ATTRIBUTE.findall(text)]
    text = TAG.sub(" ", text)
    words = []
    for chunk in [text, *attributes]:
        chunk = ENTITY.sub(" ", chunk)
        for word in chunk.split():
            if any(character.isalpha() for character in word):
                words.append(word)
    return [word for word in words if word.strip(".,:;()·") not in UNTRANSLATED]


def test_visible_text_check_finds_text() -> None:
    page = '<h1>Hello {{ name }}</h1><input placeholder="Search">'

    assert visible_text(page) == ["Hello", "Search"]


def test_visible_text_check_passes_wrapped() -> None:
    page = (
        '{# a comment #}<h1>{{ _("Hello") }}</h1>'
        "<input placeholder=\"{{ _('Search') }}\"> · 12:30 "
        "{% trans %}Hi {{ name }}{% endtrans %}<script>let a = 1;</script>"
    )

    assert visible_text(page) == []


@pytest.mark.parametrize(
    "path", sorted(TEMPLATES.glob("*.html")), ids=lambda path: path.name
)
def test_template_text_is_translated(path: Path) -> None:
    assert visible_text(path.read_text(encoding="utf-8")) == []


# Locale choice and rendering, against the real server.


def test_accept_language_ranks() -> None:
    assert accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh_Hans"
    assert accept_language("fr-FR, en-GB;q=0.5, zh;q=0.4") == "en"
    assert accept_language("en;q=0.2, zh-Hans;q=0.9") == "zh_Hans"
    assert accept_language("fr, de") is None
    assert accept_language("zh;q=0, en") == "en"
    assert accept_language("") is None


def test_parse_locale_names() -> None:
    assert parse_locale("zh_Hans") == "zh_Hans"
    assert parse_locale("zh-TW") == "zh_Hans"
    assert parse_locale("en-US") == "en"
    assert parse_locale("fr") is None
    assert parse_locale(None) is None


def test_durations_read_well() -> None:
    english = Locale.parse("en")
    chinese = Locale.parse("zh_Hans")

    assert format_seconds(75, english) == "1 min 15 sec"
    assert format_seconds(0, english) == "0 sec"
    assert format_seconds(3720, english) == "1 hr 2 min"
    assert format_seconds(75, chinese) == "1分钟15秒"


async def set_locale(database: Database, email: str, locale: str) -> None:
    async with transaction(database.writes) as session:
        await session.execute(
            update(User).where(User.email == email).values(locale=locale)
        )


async def stored_locale(database: Database, email: str) -> str | None:
    async with database.reads() as session:
        return await session.scalar(select(User.locale).where(User.email == email))


async def test_pages_in_chinese_for_user(client: Any, database: Database) -> None:
    await set_locale(database, ADMIN_EMAIL, "zh_Hans")
    await login(client, ADMIN_EMAIL)

    customers = await (await client.get("/customers")).text()
    users = await (await client.get("/admin/users")).text()
    audit = await (await client.get("/admin/audit")).text()

    assert '<html lang="zh-Hans">' in customers
    assert "<h1>客户</h1>" in customers
    assert "退出登录" in customers
    assert "Log out" not in customers
    assert "添加用户" in users
    assert "管理员" in users
    assert "审计日志" in audit
    assert "登录" in audit


async def test_pages_in_english_by_default(client: Any) -> None:
    await login(client, ADMIN_EMAIL)

    text = await (await client.get("/customers")).text()

    assert '<html lang="en">' in text
    assert "<h1>Customers</h1>" in text


async def test_language_switch_changes_next_page(
    client: Any, database: Database
) -> None:
    csrf = await login(client, ADMIN_EMAIL)

    switched = await client.post(
        "/account/language",
        data={"locale": "zh_Hans", "next": "/admin/users", "csrf_token": csrf},
        allow_redirects=False,
    )
    chinese = await (await client.get("/admin/users")).text()

    assert switched.status == 303
    assert switched.headers["Location"] == "/admin/users"
    assert "<h1>用户</h1>" in chinese
    assert await stored_locale(database, ADMIN_EMAIL) == "zh_Hans"

    back = await client.post(
        "/account/language",
        data={"locale": "en", "next": "/customers", "csrf_token": csrf},
        allow_redirects=False,
    )
    english = await (await client.get("/customers")).text()

    assert back.status == 303
    assert "<h1>Customers</h1>" in english
    assert await stored_locale(database, ADMIN_EMAIL) == "en"


@pytest.mark.parametrize("value", ["fr", "", "zh_Hant", "EN"])
async def test_language_switch_rejects_locale(
    client: Any, database: Database, value: str
) -> None:
    csrf = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/account/language", data={"locale": value, "csrf_token": csrf}
    )

    assert response.status == 400
    assert "<code>locale</code>" in await response.text()
    assert await stored_locale(database, ADMIN_EMAIL) == "en"


async def test_language_switch_needs_csrf(client: Any, database: Database) -> None:
    await login(client, ADMIN_EMAIL)

    missing = await client.post("/account/language", data={"locale": "zh_Hans"})
    wrong = await client.post(
        "/account/language", data={"locale": "zh_Hans", "csrf_token": "x" * 43}
    )

    assert missing.status == 403
    assert wrong.status == 403
    assert await stored_locale(database, ADMIN_EMAIL) == "en"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/"])
async def test_language_switch_stays_on_site(client: Any, target: str) -> None:
    csrf = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/account/language",
        data={"locale": "zh_Hans", "next": target, "csrf_token": csrf},
        allow_redirects=False,
    )

    assert response.status == 303
    assert response.headers["Location"] == "/customers"


async def test_login_page_follows_accept_language(client: Any) -> None:
    chinese = await client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    english = await client.get("/login", headers={"Accept-Language": "fr, en;q=0.5"})
    other = await client.get("/login", headers={"Accept-Language": "fr"})

    assert "<h1>登录</h1>" in await chinese.text()
    assert '<html lang="zh-Hans">' in await chinese.text()
    assert "<h1>Log in</h1>" in await english.text()
    assert "<h1>Log in</h1>" in await other.text()


async def test_login_page_language_cookie(client: Any) -> None:
    form = await client.get("/login?next=/admin/users")
    csrf = csrf_of(await form.text())

    switched = await client.post(
        "/account/language",
        data={
            "locale": "zh_Hans",
            "next": "/login?next=/admin/users",
            "csrf_token": csrf,
        },
        allow_redirects=False,
    )
    page = await client.get("/login", headers={"Accept-Language": "en"})

    assert switched.status == 303
    assert switched.headers["Location"] == "/login?next=/admin/users"
    cookie = switched.cookies["touchline_lang"]
    assert cookie.value == "zh_Hans"
    assert cookie["httponly"]
    assert "<h1>登录</h1>" in await page.text()


async def test_login_error_in_chinese(client: Any) -> None:
    headers = {"Accept-Language": "zh-CN"}
    form = await client.get("/login", headers=headers)

    response = await client.post(
        "/login",
        data={
            "email": ADMIN_EMAIL,
            "password": "wrong password",
            "csrf_token": csrf_of(await form.text()),
        },
        headers=headers,
    )

    assert response.status == 401
    assert "电子邮件或密码错误" in await response.text()


async def test_error_page_translated(client: Any, database: Database) -> None:
    await set_locale(database, ADMIN_EMAIL, "zh_Hans")
    await login(client, ADMIN_EMAIL)

    response = await client.get("/customers/999")

    text = await response.text()
    assert response.status == 404
    assert "错误 404" in text
    assert "未找到客户 999" in text


async def test_api_errors_stay_english(client: Any) -> None:
    headers = {"Accept-Language": "zh-CN"}

    response = await client.get("/api/v1/customers", headers=headers)

    assert response.status == 401
    assert (await response.json())["error"] == "missing bearer token"


async def test_admin_sets_user_locale(
    client: Any, as_admin: str, database: Database
) -> None:
    async with database.reads() as session:
        user_id = await session.scalar(select(User.id).where(User.email == ANA.email))
        role = await session.scalar(select(User.role).where(User.email == ANA.email))

    saved = await client.post(
        f"/admin/users/{user_id}",
        data={"role": role, "team": "", "locale": "zh_Hans", "csrf_token": as_admin},
        allow_redirects=False,
    )
    rejected = await client.post(
        f"/admin/users/{user_id}",
        data={"role": role, "team": "", "locale": "xx", "csrf_token": as_admin},
    )

    assert saved.status == 303
    assert await stored_locale(database, ANA.email) == "zh_Hans"
    assert rejected.status == 400
    assert "<code>locale</code>" in await rejected.text()


async def test_concurrent_pages_keep_languages(client: Any, database: Database) -> None:
    await set_locale(database, ANA.email, "zh_Hans")
    origin = str(client.make_url("/")).rstrip("/")
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[origin])
    # A second browser on the same server, logged in as another user.
    chinese = TestClient(client.server, cookie_jar=jar)
    english = client
    await login(english, ADMIN_EMAIL)
    await login(chinese, ANA.email)

    async def heading(client: Any) -> str:
        text = await (await client.get("/customers")).text()
        found = re.search(r"<h1>(.*?)</h1>", text)
        assert found is not None
        return found.group(1)

    headings = await asyncio.gather(
        *[heading(client) for _ in range(10) for client in (english, chinese)]
    )

    await chinese.session.close()

    assert headings == ["Customers", "客户"] * 10


async def test_times_in_user_zone(client: Any, database: Database) -> None:
    async with transaction(database.writes) as session:
        await session.execute(
            update(User)
            .where(User.email == ADMIN_EMAIL)
            .values(timezone="Asia/Shanghai", locale="zh_Hans")
        )
    await login(client, ADMIN_EMAIL)

    text = await (await client.get("/admin/audit")).text()

    # The login just made is listed in China Standard Time, in Chinese style.
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", text)
    assert "+0800" in text
