"""Fetching recording and MMS media from allowed hosts only.

A URL from a webhook body is never fetched blindly. Its scheme and host must
match `media_hosts` (https, or plain http on loopback), and every redirect
hop is checked the same way. A listed host name must resolve to public
addresses only, so a name that points at the internal network (by mistake or
by DNS rebinding) is not connected to; an address listed as a literal, such
as 127.0.0.1 for a local media host, is used as listed. The size is capped
and the whole fetch has a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from capture.worker import PermanentFailure, RetryLater

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
# Statuses that may pass on a later try: Twilio returns 404 until a recording
# is ready, and 429 or 5xx under load.
RETRY_STATUSES = frozenset({404, 408, 425, 429, 500, 502, 503, 504})


PARTIAL = ".part"


def remove_stale_partials(folder: Path, older_than_seconds: float) -> int:
    """Delete downloads left half-written by a killed process; return the count.

    Only files older than the longest possible download are removed, so a
    download still running in another process keeps its file.
    """
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in folder.glob(f"*{PARTIAL}"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


# Checks the first bytes of a download; raises PermanentFailure to reject it.
HeadCheck = Callable[[bytes], None]
HEAD_BYTES = 12


def require_wav(head: bytes) -> None:
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise PermanentFailure("media is not a WAV file")


def accept_any(head: bytes) -> None:
    """Accept any content; MMS media are served as their declared type."""


@dataclass(frozen=True)
class SavedMedia:
    path: Path
    size_bytes: int
    sha256: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_media_url(url: str, media_hosts: tuple[str, ...]) -> None:
    """Raise PermanentFailure unless `url` may be fetched."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise PermanentFailure(f"media URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise PermanentFailure(f"media URL for {host} must not carry credentials")
    expected_scheme = "http" if is_loopback(host) else "https"
    if parts.scheme not in (expected_scheme, "https"):
        raise PermanentFailure(
            f"media URL scheme {parts.scheme!r} is not allowed for {host}"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PermanentFailure(f"media URL {url!r} has an invalid port") from None
    for entry in media_hosts:
        name, _, entry_port = entry.partition(":")
        if name == host and (not entry_port or int(entry_port) == port):
            return
    raise PermanentFailure(f"media host {host}:{port} is not in media_hosts")


class PublicAddressResolver(AbstractResolver):
    """A resolver that drops every address that is not globally routable.

    It drops loopback, private, link-local, shared and reserved addresses,
    the cloud metadata address among them. A name left with no address
    fails to connect, and `rejected` records it with its addresses.
    """

    def __init__(
        self,
        inner: AbstractResolver | None = None,
        loopback_names: frozenset[str] = frozenset(),
    ) -> None:
        self.inner = inner or DefaultResolver()
        # Names such as localhost that media_hosts lists on purpose; they may
        # resolve to loopback addresses, and to nothing else internal.
        self.loopback_names = loopback_names
        self.rejected: dict[str, list[str]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = _is_loopback if host in self.loopback_names else _is_public
        public = [result for result in results if allowed(result["host"])]
        if not public:
            self.rejected[host] = [result["host"] for result in results]
            raise OSError(f"{host} resolves to internal addresses only")
        return public

    async def close(self) -> None:
        await self.inner.close()


def _is_public(address: str) -> bool:
    ip = _address(address)
    return ip.is_global and not ip.is_multicast


def _is_loopback(address: str) -> bool:
    return _address(address).is_loopback


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # A link-local IPv6 result carries its zone, as in fe80::1%eth0.
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


async def download(
    url: str,
    destination: Path,
    *,
    media_hosts: tuple[str, ...],
    auth: tuple[str, str] | None,
    max_bytes: int,
    timeout_seconds: float,
    check_head: HeadCheck = require_wav,
    resolver: AbstractResolver | None = None,
) -> SavedMedia:
    """Fetch `url` into `destination` atomically.

    `check_head` sees the first bytes and may reject the file. Raises
    RetryLater for failures that may pass and PermanentFailure for the rest.
    `resolver` replaces the system's name lookup beneath the public address
    check.
    """
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    loopback_names = frozenset(
        name
        for name, _, _ in (entry.partition(":") for entry in media_hosts)
        if name == "localhost"
    )
    guard = PublicAddressResolver(resolver, loopback_names)
    connector = aiohttp.TCPConnector(resolver=guard)
    try:
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector
        ) as session:
            return await _follow(
                session, url, destination, media_hosts, auth, max_bytes, check_head
            )
    except (aiohttp.ClientError, TimeoutError) as error:
        if guard.rejected:
            host, addresses = next(iter(guard.rejected.items()))
            raise PermanentFailure(
                f"media host {host} resolves to internal addresses "
                f"{', '.join(addresses)}; list the address itself in media_hosts "
                "to allow it"
            ) from error
        raise RetryLater(f"media fetch failed: {error!r}") from error


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    destination: Path,
    media_hosts: tuple[str, ...],
    auth: tuple[str, str] | None,
    max_bytes: int,
    check_head: HeadCheck,
) -> SavedMedia:
    first_origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        check_media_url(url, media_hosts)
        # Credentials go only to the scheme, host and port the webhook named,
        # never to a redirect target such as a storage bucket.
        headers = {}
        if auth is not None and _origin(url) == first_origin:
            headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308):
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            _check_status(response.status, url)
            return await _save(response, destination, max_bytes, check_head)
    raise PermanentFailure(f"more than {MAX_REDIRECTS} redirects")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port)


def _check_status(status: int, url: str) -> None:
    if status == 200:
        return
    host = urlsplit(url).hostname
    if status in RETRY_STATUSES:
        raise RetryLater(f"media host {host} returned HTTP {status}")
    raise PermanentFailure(f"media host {host} returned HTTP {status}")


async def _save(
    response: aiohttp.ClientResponse,
    destination: Path,
    max_bytes: int,
    check_head: HeadCheck,
) -> SavedMedia:
    length = response.content_length
    if length is not None and length > max_bytes:
        raise PermanentFailure(f"media is {length} bytes, over the cap of {max_bytes}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    handle, temporary = tempfile.mkstemp(dir=destination.parent, suffix=PARTIAL)
    try:
        with os.fdopen(handle, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise PermanentFailure(
                        f"media exceeds the cap of {max_bytes} bytes"
                    )
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                digest.update(chunk)
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        check_head(head)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return SavedMedia(destination, size, digest.hexdigest())
