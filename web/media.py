"""MMS media files, served to users who may see the message's touch.

Only images whose first bytes match their declared type are shown inline.
Every other file is served as an attachment, so a file a customer sent
(an HTML page, an SVG with scripts) is never rendered in the service's
origin. Responses carry `nosniff` through the security headers.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from capture.errors import NotFound
from capture.mms import visible_media
from capture.queries import parse_id
from web.access import viewer_of
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()

# Image types a browser may show inline, each with the bytes its files
# start with; WebP is RIFF, four length bytes, then WEBP.
INLINE_IMAGES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
HEAD_BYTES = 12


def is_inline_image(content_type: str, head: bytes) -> bool:
    signatures = INLINE_IMAGES.get(content_type)
    if signatures is None or not head.startswith(signatures):
        return False
    return content_type != "image/webp" or head[8:12] == b"WEBP"


def file_name(message_sid: str, position: int, content_type: str) -> str:
    extension = mimetypes.guess_extension(content_type) or ""
    return f"{message_sid}-{position}{extension}"


@routes.get("/media/{id}")
async def media_file(request: web.Request) -> web.FileResponse:
    settings = request.app[SETTINGS]
    raw = request.match_info["id"]
    media_id = parse_id(raw)
    if media_id is None:
        raise NotFound(f"media {raw!r} not found", "id")
    async with request.app[DATABASE].reads() as session:
        media, message_sid = await visible_media(session, viewer_of(request), media_id)
    path = (settings.data_dir / str(media.file_path)).resolve()
    if not path.is_relative_to(settings.media_dir.resolve()) or not path.is_file():
        raise NotFound(f"media {media_id} not found", "id")
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    name = file_name(message_sid, media.position, media.content_type)
    if is_inline_image(media.content_type, head):
        content_type, disposition = media.content_type, "inline"
    else:
        content_type, disposition = media.content_type, "attachment"
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": f'{disposition}; filename="{name}"',
        # A file a customer sent runs no script even when opened directly.
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    return web.FileResponse(Path(path), headers=headers)
