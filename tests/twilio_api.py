"""A loopback HTTP server that replaces Twilio's REST API in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from conftest import free_port
from multidict import MultiDict


@dataclass
class ApiRequest:
    method: str
    path: str
    authorization: str
    form: MultiDict[str]


@dataclass
class TwilioApi:
    """Record each request and respond with `status` and `body`."""

    status: int = 201
    body: dict[str, Any] = field(default_factory=dict)
    requests: list[ApiRequest] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(
            ApiRequest(
                request.method,
                request.path,
                request.headers.get("Authorization", ""),
                MultiDict((key, str(value)) for key, value in form.items()),
            )
        )
        return web.json_response(self.body, status=self.status)


@asynccontextmanager
async def twilio_api(api: TwilioApi) -> AsyncIterator[TwilioApi]:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    api.port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", api.port)
    await site.start()
    try:
        yield api
    finally:
        await runner.cleanup()
