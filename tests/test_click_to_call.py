"""Click-to-call: the exact REST request to Twilio, the bridge TwiML, the errors."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    csrf_of,
    login,
    make_settings,
    post_signed,
    start_client,
)
from sqlalchemy import select, update
from twilio_api import TwilioApi, twilio_api

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo import load_demo
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import ContactPoint, User
from web.app import create_app
from web.keys import DATABASE

ANA, BEN, CHEN = REPS
HARBOR = CUSTOMERS[0]
RIVERSIDE = CUSTOMERS[4]
CALL_SID = "CA" + "7" * 32
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
DISCLOSURE = "This call is recorded."


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def api() -> AsyncIterator[TwilioApi]:
    fake = TwilioApi(body={"sid": CALL_SID, "status": "queued"})
    async with twilio_api(fake):
        yield fake


@pytest.fixture
async def calling_client(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    password_hash: str,
    api: TwilioApi,
    overrides: dict[str, Any],
) -> Any:
    values = {"twilio_api_url": api.base_url, **overrides}
    settings = make_settings(tmp_path / "data", database_url, **values)
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    async with transaction(database_of(client).writes) as session:
        await load_demo(session, settings.default_region, password_hash)
    return client


def database_of(client: Any) -> Database:
    database: Database = client.app[DATABASE]
    return database


async def customer_id_of(client: Any, phone: str) -> int:
    async with database_of(client).reads() as session:
        found = await session.scalar(
            select(ContactPoint.customer_id).where(ContactPoint.value == phone)
        )
    assert found is not None
    return found


async def click_call(client: Any, email: str, customer_phone: str) -> Any:
    await login(client, email)
    customer_id = await customer_id_of(client, customer_phone)
    page = await client.get(f"/customers/{customer_id}")
    assert page.status == 200
    return await client.post(
        f"/customers/{customer_id}/call",
        data={"csrf_token": csrf_of(await page.text())},
        allow_redirects=False,
    )


async def test_click_to_call_exact_request(calling_client: Any, api: TwilioApi) -> None:
    response = await click_call(calling_client, ANA.email, HARBOR.phone)

    assert response.status == 303
    customer_id = await customer_id_of(calling_client, HARBOR.phone)
    assert response.headers["Location"] == (
        f"/customers/{customer_id}?calling={CALL_SID}"
    )
    [request] = api.requests
    assert request.method == "POST"
    assert request.path == CALLS_PATH
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.authorization == f"Basic {credentials}"
    form = request.form
    assert sorted(set(form)) == sorted(
        {
            "To",
            "From",
            "Url",
            "Method",
            "Timeout",
            "StatusCallback",
            "StatusCallbackMethod",
            "StatusCallbackEvent",
            "Record",
            "RecordingChannels",
            "RecordingStatusCallback",
            "RecordingStatusCallbackMethod",
            "RecordingStatusCallbackEvent",
        }
    )
    assert form["To"] == ANA.phone
    assert form["From"] == ORGANISATION_NUMBER
    assert form["Url"] == f"{PUBLIC_URL}/twilio/voice/bridge?to=%2B14155550201"
    assert form["Method"] == "POST"
    assert form["Timeout"] == "20"
    assert form["StatusCallback"] == f"{PUBLIC_URL}/twilio/voice/status"
    assert form["StatusCallbackMethod"] == "POST"
    assert form.getall("StatusCallbackEvent") == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert form["Record"] == "true"
    assert form["RecordingChannels"] == "dual"
    assert form["RecordingStatusCallback"] == f"{PUBLIC_URL}/twilio/voice/recording"
    assert form["RecordingStatusCallbackMethod"] == "POST"
    assert form.getall("RecordingStatusCallbackEvent") == [
        "in-progress",
        "completed",
        "absent",
    ]


async def test_click_to_call_page_shows_notice(
    calling_client: Any, api: TwilioApi
) -> None:
    response = await click_call(calling_client, ANA.email, HARBOR.phone)

    page = await calling_client.get(response.headers["Location"])

    text = await page.text()
    assert 'id="click-to-call"' in text
    assert 'id="calling"' in text


async def test_click_to_call_client_identity(
    calling_client: Any, api: TwilioApi
) -> None:
    async with transaction(database_of(calling_client).writes) as session:
        await session.execute(
            update(User).where(User.email == CHEN.email).values(phone=None)
        )

    response = await click_call(calling_client, CHEN.email, RIVERSIDE.phone)

    assert response.status == 303
    [request] = api.requests
    assert request.form["To"] == "client:chen"


async def test_click_to_call_bad_csrf_sends_nothing(
    calling_client: Any, api: TwilioApi
) -> None:
    await login(calling_client, ANA.email)
    customer_id = await customer_id_of(calling_client, HARBOR.phone)

    response = await calling_client.post(
        f"/customers/{customer_id}/call",
        data={"csrf_token": "not-the-token"},
        allow_redirects=False,
    )

    assert response.status == 403
    assert api.requests == []


async def test_click_to_call_rep_without_phone(
    calling_client: Any, api: TwilioApi
) -> None:
    async with transaction(database_of(calling_client).writes) as session:
        await session.execute(
            update(User).where(User.email == ANA.email).values(phone=None)
        )

    response = await click_call(calling_client, ANA.email, HARBOR.phone)

    assert response.status == 409
    assert "no phone number" in await response.text()
    assert api.requests == []


@pytest.mark.parametrize("overrides", [{"twilio_account_sid": ""}])
async def test_click_to_call_missing_credentials(
    calling_client: Any, api: TwilioApi
) -> None:
    response = await click_call(calling_client, ANA.email, HARBOR.phone)

    assert response.status == 503
    assert "twilio_account_sid" in await response.text()
    assert api.requests == []


async def test_click_to_call_twilio_error(calling_client: Any, api: TwilioApi) -> None:
    api.status = 400
    api.body = {
        "code": 21211,
        "message": "The 'To' number is not a valid phone number.",
        "status": 400,
    }

    response = await click_call(calling_client, ANA.email, HARBOR.phone)

    assert response.status == 502
    text = await response.text()
    assert "21211" in text
    assert "not a valid phone number" in text


@pytest.mark.parametrize("overrides", [{"twilio_api_url": "http://127.0.0.1:9"}])
async def test_click_to_call_api_unreachable(
    calling_client: Any, api: TwilioApi
) -> None:
    response = await click_call(calling_client, ANA.email, HARBOR.phone)

    assert response.status == 502
    assert "API failed" in await response.text()


async def api_token(client: Any, email: str) -> dict[str, str]:
    async with transaction(database_of(client).writes) as session:
        secret, _ = await create_token(session, email)
    return {"Authorization": f"Bearer {secret}"}


async def test_api_click_to_call(calling_client: Any, api: TwilioApi) -> None:
    headers = await api_token(calling_client, ANA.email)
    customer_id = await customer_id_of(calling_client, HARBOR.phone)

    response = await calling_client.post(
        "/api/v1/calls",
        json={"customer_id": customer_id, "phone": "(415) 555-0201"},
        headers=headers,
    )

    assert response.status == 201
    assert await response.json() == {"call_sid": CALL_SID, "customer_id": customer_id}
    [request] = api.requests
    assert request.form["To"] == ANA.phone
    assert request.form["Url"].endswith("?to=%2B14155550201")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "1"}, "customer_id"),
        ({}, "customer_id"),
        ({"customer_id": 10**23}, "customer_id"),
        ({"customer_id": 1, "phone": 5}, "phone"),
        ({"customer_id": 1, "phone": "+14155550999"}, "phone"),
    ],
)
async def test_api_click_to_call_bad_input(
    calling_client: Any, api: TwilioApi, body: dict[str, Any], field: str
) -> None:
    headers = await api_token(calling_client, ANA.email)

    response = await calling_client.post("/api/v1/calls", json=body, headers=headers)

    assert response.status == 400
    assert (await response.json())["field"] == field
    assert api.requests == []


async def test_api_click_to_call_other_reps_customer(
    calling_client: Any, api: TwilioApi
) -> None:
    headers = await api_token(calling_client, ANA.email)
    riverside = await customer_id_of(calling_client, RIVERSIDE.phone)

    response = await calling_client.post(
        "/api/v1/calls", json={"customer_id": riverside}, headers=headers
    )

    assert response.status == 404
    assert api.requests == []


def bridge_params(caller_id: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": CALL_SID,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "From": caller_id,
        "To": ANA.phone,
    }


async def bridge(client: Any, to: str) -> Any:
    path = f"/twilio/voice/bridge?to={to}"
    return await post_signed(client, path, bridge_params(ORGANISATION_NUMBER))


async def test_bridge_dials_customer(calling_client: Any) -> None:
    response = await bridge(calling_client, "%2B14155550201")

    assert response.status == 200
    document = ElementTree.fromstring(await response.text())
    assert document.find("Say") is None
    dial = document.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == ORGANISATION_NUMBER
    assert dial.get("record") is None, "the REST request records the call"
    number = dial.find("Number")
    assert number is not None
    assert number.text == HARBOR.phone
    assert number.get("statusCallback") == f"{PUBLIC_URL}/twilio/voice/status"
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"


@pytest.mark.parametrize("overrides", [{"recording_disclosure": DISCLOSURE}])
async def test_bridge_says_disclosure(calling_client: Any) -> None:
    response = await bridge(calling_client, "%2B14155550201")

    document = ElementTree.fromstring(await response.text())
    assert [child.tag for child in document] == ["Say", "Dial"]
    assert document[0].text == DISCLOSURE


async def test_bridge_bad_number_names_field(calling_client: Any) -> None:
    response = await bridge(calling_client, "not-a-number")

    assert response.status == 400
    assert (await response.json())["field"] == "to"


async def test_bridge_unsigned_rejected(calling_client: Any) -> None:
    response = await calling_client.post(
        "/twilio/voice/bridge?to=%2B14155550201",
        data=bridge_params(ORGANISATION_NUMBER),
    )

    assert response.status == 403
