"""Signed webhooks in every form Twilio uses: forms, JSON bodies and SharedKeys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import AUTH_TOKEN, PUBLIC_URL, make_settings, start_client
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from twilio_params import call_status, new_sid
from yarl import URL

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.models import CallEvent
from capture.settings import SettingsError, load_settings
from telephony.signature import form_signature_valid
from web.app import create_app

PATH = "/twilio/voice/status"
KEY_ID = "webhooks_sharedkey_0001"
KEY_SECRET = "shared-secret-of-the-webhooks-key"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


@pytest.fixture
async def shared_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> Any:
    settings = make_settings(
        tmp_path / "data",
        database_url,
        twilio_shared_keys=f"{KEY_ID}={KEY_SECRET}",
    )
    return await start_client(aiohttp_client, create_app(settings, run_worker=False))


def ringing() -> dict[str, str]:
    return call_status(
        new_sid("CA"), "ringing", 1, caller=REPS[0].phone, called=CUSTOMERS[0].phone
    )


async def stored(database: Database) -> int:
    async with database.reads() as session:
        count = await session.scalar(select(func.count()).select_from(CallEvent))
    return int(count or 0)


async def post(
    client: Any, path_and_query: str, body: Any, headers: dict[str, str]
) -> Any:
    # encoded=True sends the path and query byte for byte, as Twilio does.
    target = URL(str(client.make_url("/")).rstrip("/") + path_and_query, encoded=True)
    return await client.session.post(target, data=body, headers=headers)


async def post_json(
    client: Any, document: Any, *, body_hash: str | None = None, sign: bool = True
) -> Any:
    body = json.dumps(document)
    digest = (
        hashlib.sha256(body.encode()).hexdigest() if body_hash is None else body_hash
    )
    query = f"{PATH}?bodySHA256={digest}"
    headers = {"Content-Type": "application/json"}
    if sign:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            PUBLIC_URL + query, {}
        )
        headers["X-Twilio-Signature"] = signature
    return await post(client, query, body.encode(), headers)


async def test_json_body_with_hash_accepted(
    shared_client: Any, database: Database
) -> None:
    response = await post_json(shared_client, ringing())

    assert response.status == 204
    assert await stored(database) == 1


async def test_json_body_hash_mismatch_rejected(
    shared_client: Any, database: Database
) -> None:
    response = await post_json(shared_client, ringing(), body_hash="0" * 64)

    assert response.status == 403
    assert await stored(database) == 0


async def test_json_body_without_hash_rejected(
    shared_client: Any, database: Database
) -> None:
    # Without bodySHA256 the signature would cover the URL only, so anyone
    # holding one signed URL could post any body to it.
    params = ringing()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + PATH, {})
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}

    response = await post(shared_client, PATH, json.dumps(params).encode(), headers)

    assert response.status == 403
    assert await stored(database) == 0


async def test_json_body_unsigned_rejected(
    shared_client: Any, database: Database
) -> None:
    response = await post_json(shared_client, ringing(), sign=False)

    assert response.status == 403
    assert await stored(database) == 0


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([1, 2], "body"),
        ({"CallSid": {"nested": 1}}, "CallSid"),
    ],
)
async def test_json_body_not_flat_object(
    shared_client: Any, database: Database, document: Any, field: str
) -> None:
    response = await post_json(shared_client, document)

    assert response.status == 400
    assert (await response.json())["field"] == field
    assert await stored(database) == 0


async def test_json_body_numbers_read_as_fields(
    shared_client: Any, database: Database
) -> None:
    params: dict[str, Any] = ringing()
    params["SequenceNumber"] = 1

    response = await post_json(shared_client, params)

    assert response.status == 204
    assert await stored(database) == 1


def shared_key_headers(
    params: dict[str, str], url: str, secret: str, algorithm: str = "HMAC_SHA256"
) -> dict[str, str]:
    signature = RequestValidator(secret).compute_signature(url, params, algorithm)
    return {
        "X-Twilio-Signature": signature,
        SETTINGS_HEADER: f"key={KEY_ID},algorithm={algorithm}",
    }


async def test_shared_key_sha256_accepted(
    shared_client: Any, database: Database
) -> None:
    params = ringing()
    headers = shared_key_headers(params, PUBLIC_URL + PATH, KEY_SECRET)

    response = await post(shared_client, PATH, params, headers)

    assert response.status == 204
    assert await stored(database) == 1


async def test_shared_key_with_auth_token_rejected(
    shared_client: Any, database: Database
) -> None:
    params = ringing()
    headers = shared_key_headers(params, PUBLIC_URL + PATH, AUTH_TOKEN)

    response = await post(shared_client, PATH, params, headers)

    assert response.status == 403
    assert await stored(database) == 0


async def test_shared_key_unknown_id_rejected(
    shared_client: Any, database: Database
) -> None:
    params = ringing()
    headers = shared_key_headers(params, PUBLIC_URL + PATH, KEY_SECRET)
    headers[SETTINGS_HEADER] = "key=webhooks_sharedkey_other,algorithm=HMAC_SHA256"

    response = await post(shared_client, PATH, params, headers)

    assert response.status == 403
    assert (await response.json())["field"] == SETTINGS_HEADER
    assert await stored(database) == 0


async def test_shared_key_unknown_algorithm_rejected(
    shared_client: Any, database: Database
) -> None:
    params = ringing()
    headers = shared_key_headers(params, PUBLIC_URL + PATH, KEY_SECRET)
    headers[SETTINGS_HEADER] = f"key={KEY_ID},algorithm=HMAC_MD5"

    response = await post(shared_client, PATH, params, headers)

    assert response.status == 403
    assert await stored(database) == 0


async def test_shared_key_json_body_accepted(
    shared_client: Any, database: Database
) -> None:
    body = json.dumps(ringing())
    query = f"{PATH}?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    headers = shared_key_headers({}, PUBLIC_URL + query, KEY_SECRET)
    headers["Content-Type"] = "application/json"

    response = await post(shared_client, query, body.encode(), headers)

    assert response.status == 204
    assert await stored(database) == 1


async def test_raw_query_signed_as_received(
    shared_client: Any, database: Database
) -> None:
    # Twilio signs the query exactly as it sent it: %40 stays %40 and the
    # parameter order stays as written.
    params = ringing()
    query = f"{PATH}?z=last&a=%40first"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        PUBLIC_URL + query, params
    )
    headers = {"X-Twilio-Signature": signature}

    accepted = await post(shared_client, query, params, headers)
    reordered = await post(shared_client, f"{PATH}?a=%40first&z=last", params, headers)

    assert accepted.status == 204
    assert reordered.status == 403
    assert await stored(database) == 1


@pytest.mark.parametrize(
    "value",
    ["no-equals-sign", "=secret-without-id", "id-without-secret="],
)
def test_shared_keys_setting_invalid(value: str) -> None:
    with pytest.raises(SettingsError, match="twilio_shared_keys"):
        load_settings(
            environ={
                "TOUCHLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TOUCHLINE_SECRET_KEY": "k" * 40,
                "TOUCHLINE_TWILIO_SHARED_KEYS": value,
            }
        )


def test_shared_keys_setting_pairs() -> None:
    settings = load_settings(
        environ={
            "TOUCHLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TOUCHLINE_SECRET_KEY": "k" * 40,
            "TOUCHLINE_TWILIO_SHARED_KEYS": f" {KEY_ID} = {KEY_SECRET} , key2=s2",
        }
    )

    assert settings.twilio_shared_keys == ((KEY_ID, KEY_SECRET), ("key2", "s2"))


async def test_json_body_not_utf8_rejected(
    shared_client: Any, database: Database
) -> None:
    body = b'{"From": "\xff"}'
    query = f"{PATH}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + query, {})
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}

    response = await post(shared_client, query, body, headers)

    assert response.status == 400
    assert (await response.json())["field"] == "body"
    assert await stored(database) == 0


URL_BASES = st.sampled_from(
    [
        "https://crm.example.test",
        "https://crm.example.test:443",
        "https://crm.example.test:8443",
        "http://127.0.0.1:8080",
        "http://127.0.0.1",
    ]
)
PATHS = st.sampled_from(
    ["/twilio/sms", "/twilio/sms/status?rep=ana%40example.com", "/twilio/x?a=1&a=2"]
)


@given(
    base=URL_BASES,
    path=PATHS,
    pairs=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=5),
    signed_base=URL_BASES,
    algorithm=st.sampled_from(["HMAC_SHA1", "HMAC_SHA256", "HMAC_MD5"]),
)
@settings(max_examples=300, deadline=None)
def test_lazy_form_check_matches_validate(
    base: str,
    path: str,
    pairs: list[tuple[str, str]],
    signed_base: str,
    algorithm: str,
) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    fields = MultiDictProxy(MultiDict(pairs))
    signing = algorithm if algorithm != "HMAC_MD5" else "HMAC_SHA1"
    signature = validator.compute_signature(signed_base + path, fields, signing)

    lazy = form_signature_valid(validator, base + path, fields, signature, algorithm)

    assert lazy == validator.validate(base + path, fields, signature, algorithm)
