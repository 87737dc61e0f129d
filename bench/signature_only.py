"""The baseline server for bench/webhooks.py: parse the form, check the signature.

It does the least any Twilio webhook handler must do and stores nothing.
Run: python bench/signature_only.py PORT PUBLIC_URL AUTH_TOKEN
"""

from __future__ import annotations

import sys

from aiohttp import web
from twilio.request_validator import RequestValidator


def create_app(public_url: str, auth_token: str) -> web.Application:
    validator = RequestValidator(auth_token)

    async def status(request: web.Request) -> web.Response:
        form = await request.post()
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(public_url + request.raw_path, form, signature):
            raise web.HTTPForbidden()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/twilio/voice/status", status)
    return app


if __name__ == "__main__":
    port, public_url, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    web.run_app(create_app(public_url, token), host="127.0.0.1", port=port, print=None)
