"""A loopback HTTP server standing in for Twilio's media host in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class MediaHost:
    """Serves `files` by path, with 404 for the first `not_ready` requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    # Paths that redirect (302) to the given URL.
    redirects: dict[str, str] = field(default_factory=dict)
    not_ready: int = 0
    # Content-Type by path; files not listed are served as audio/x-wav.
    content_types: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        self.auth_headers.append(request.headers.get("Authorization"))
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        if self.not_ready > 0:
            self.not_ready -= 1
            return web.Response(status=404, text="not ready")
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404, text="unknown")
        content_type = self.content_types.get(request.path, "audio/x-wav")
        return web.Response(body=body, content_type=content_type)


@asynccontextmanager
async def media_host(host: MediaHost) -> AsyncIterator[MediaHost]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", host.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    host.base_url = f"http://127.0.0.1:{port}"
    try:
        yield host
    finally:
        await runner.cleanup()
