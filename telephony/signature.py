"""Twilio request signatures (`X-Twilio-Signature`).

Twilio signs the full URL it called followed by the sorted POST parameters.
Behind a proxy the URL of the service's own socket differs from the one
Twilio called, so the URL to check is the configured public base URL plus
the path and query exactly as received.

Three forms are accepted, all checked by twilio's `RequestValidator`:

- a URL-encoded form signed with HMAC-SHA1 and the account's auth token;
- a JSON body: the URL then carries `bodySHA256`, the SHA-256 of the body,
  and the signature covers the URL alone;
- either of these signed with a SharedKey: the header
  `X-Twilio-Webhooks-Signature-Settings` names the key and the algorithm
  (`key=<key id>,algorithm=HMAC_SHA256`), and the key's secret comes from
  the `twilio_shared_keys` setting.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from urllib.parse import parse_qs, urlparse, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDictProxy
from twilio.request_validator import (
    HMAC_SHA1,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    compare,
    get_signature_algorithm,
    remove_port,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
BODY_HASH_PARAMETER = "bodySHA256"


def _bad_request(message: str, field: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": message, "field": field}),
        content_type="application/json",
    )


def _forbidden(message: str, field: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(
        text=json.dumps({"error": message, "field": field}),
        content_type="application/json",
    )


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """Read a URL-encoded form as Twilio sends it; raise 400 for anything else.

    Twilio posts webhooks URL-encoded in UTF-8. A multipart body could carry
    files, which the signature check cannot hash, and undecodable bytes or an
    unknown charset would otherwise fail deep inside the form parser.
    """
    if request.content_type != FORM_TYPE:
        raise _bad_request(
            f"Content-Type {request.content_type!r} is not {FORM_TYPE} or {JSON_TYPE}",
            "Content-Type",
        )
    try:
        form = await request.post()
    except (
        UnicodeDecodeError,
        LookupError,
        RequestPayloadError,
        BadHttpMessage,
    ) as error:
        raise _bad_request(
            f"the form body cannot be decoded: {error}", "body"
        ) from None
    return form  # type: ignore[return-value]


async def read_json_text(request: web.Request) -> str:
    """Read a JSON body as UTF-8 text, exactly as received."""
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise _bad_request(f"charset {charset!r} is not utf-8", "Content-Type")
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError as error:
        raise _bad_request(f"the body is not UTF-8: {error}", "body") from None


def json_fields(text: str) -> dict[str, str]:
    """Turn a JSON object of scalars into the text fields a form would carry."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise _bad_request(f"the body is not valid JSON: {error}", "body") from None
    if not isinstance(document, dict):
        raise _bad_request("the JSON body is not an object", "body")
    fields = {}
    for name, value in document.items():
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            fields[name] = str(value)
        elif value is not None:
            raise _bad_request(f"{name} is not a text or number value", name)
    return fields


def shared_key_id(header: str) -> str:
    """Return the key id named in `X-Twilio-Webhooks-Signature-Settings`."""
    for part in header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "key":
            return value.strip()
    return ""


class SignatureChecker:
    def __init__(
        self,
        public_url: str,
        auth_token: str,
        shared_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.shared = {
            key: RequestValidator(secret) for key, secret in (shared_keys or {}).items()
        }

    def url_for(self, request: web.Request) -> str:
        """Return the URL Twilio called: public base, raw path and raw query."""
        return self.public_url + request.raw_path

    async def verified_form(self, request: web.Request) -> Mapping[str, str]:
        """Return the request's fields if the signature is valid; raise 403 if not.

        A form goes to the validator as a multidict, so repeated keys all
        count, and before anything is trimmed or dropped. A JSON body goes
        as the text received, so its hash is checked byte for byte.
        """
        signature = request.headers.get(SIGNATURE_HEADER, "")
        validator, algorithm = self._validator_for(request)
        url = self.url_for(request)
        fields: Mapping[str, str]
        if request.content_type == JSON_TYPE:
            if not _has_body_hash(url):
                raise self._reject(request, f"JSON body without {BODY_HASH_PARAMETER}")

            body = await read_json_text(request)
            valid = bool(signature) and validator.validate(
                url, body, signature, algorithm
            )
            if not valid:
                raise self._reject(request, _failure(signature))
            return json_fields(body)
        fields = await read_form(request)
        if not signature or not form_signature_valid(
            validator, url, fields, signature, algorithm
        ):
            raise self._reject(request, _failure(signature))
        return fields

    async def unverified_form(self, request: web.Request) -> Mapping[str, str]:
        """Return the request's fields without a signature check.

        Only for a stored request that passed the check when it arrived.
        """
        if request.content_type == JSON_TYPE:
            return json_fields(await read_json_text(request))
        return await read_form(request)

    def _validator_for(self, request: web.Request) -> tuple[RequestValidator, str]:
        settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
        if settings is None:
            return self.validator, HMAC_SHA1
        key = shared_key_id(settings)
        validator = self.shared.get(key)
        if validator is None:
            # %r: the header comes from the sender and may hold line breaks.
            log.warning("webhook %s rejected: unknown shared key %r", request.path, key)
            raise _forbidden(
                "the webhook names a shared key this service does not know",
                SIGNATURE_SETTINGS_HEADER,
            )
        return validator, get_signature_algorithm(settings)

    def _reject(self, request: web.Request, reason: str) -> web.HTTPForbidden:
        log.warning("webhook %s rejected: %s", request.path, reason)
        return _forbidden("invalid Twilio signature", SIGNATURE_HEADER)


def form_signature_valid(
    validator: RequestValidator,
    url: str,
    fields: Mapping[str, str],
    signature: str,
    algorithm: str,
) -> bool:
    """Check a form's signature as `RequestValidator.validate` does, but lazily.

    `validate` always computes two signatures, for the URL with and without
    its default port, because Twilio may sign either. The URL as received
    is tried first and the other only when that does not match, which saves
    an HMAC over the whole form for almost every webhook.
    """
    first, second = url_variants(url)
    try:
        if compare(validator.compute_signature(first, fields, algorithm), signature):
            return True
        return bool(
            compare(validator.compute_signature(second, fields, algorithm), signature)
        )
    except ValueError:
        # compute_signature rejects an algorithm it does not support.
        log.warning("webhook signature algorithm %r is not supported", algorithm)
        return False


@functools.lru_cache(maxsize=256)
def url_variants(url: str) -> tuple[str, str]:
    """Return the URL as given and with the default port added or removed."""
    parsed = urlparse(url)
    with_port, without_port = add_port(parsed), remove_port(parsed)
    return (with_port, without_port) if parsed.port else (without_port, with_port)


def _failure(signature: str) -> str:
    return "invalid signature" if signature else "missing signature"


def _has_body_hash(url: str) -> bool:
    return BODY_HASH_PARAMETER in parse_qs(urlsplit(url).query)
