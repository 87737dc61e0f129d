"""Twilio request signatures (`X-Twilio-Signature`).

Twilio signs the full URL it called followed by the sorted POST parameters.
Behind a proxy the URL of the service's own socket differs from the one
Twilio called, so the URL to check is the configured public base URL plus
the path and query exactly as received.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"


FORM_TYPE = "application/x-www-form-urlencoded"


def _bad_request(message: str, field: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
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
            f"Content-Type {request.content_type!r} is not {FORM_TYPE}", "Content-Type"
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


class SignatureChecker:
    def __init__(self, public_url: str, auth_token: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)

    def url_for(self, request: web.Request) -> str:
        """Return the URL Twilio called: public base, raw path and raw query."""
        return self.public_url + request.raw_path

    async def verified_form(self, request: web.Request) -> MultiDictProxy[str]:
        """Return the POST form if the signature is valid; raise 403 if not.

        The form goes to the validator as a multidict, so repeated keys all
        count, and before anything is trimmed or dropped.
        """
        signature = request.headers.get(SIGNATURE_HEADER, "")
        form = await read_form(request)
        url = self.url_for(request)
        if not signature or not self.validator.validate(url, form, signature):
            log.warning(
                "webhook %s rejected: %s signature",
                request.path,
                "invalid" if signature else "missing",
            )
            raise web.HTTPForbidden(
                text=json.dumps(
                    {"error": "invalid Twilio signature", "field": SIGNATURE_HEADER}
                ),
                content_type="application/json",
            )
        return form
