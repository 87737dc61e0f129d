"""Media fetches never connect to internal addresses through a listed name.

DNS cannot be reached here, so a small resolver replaces it and maps
test names to chosen addresses. Everything above name lookup is the real
download code against a real loopback media host.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from media_host import MediaHost, media_host

from capture.worker import PermanentFailure
from telephony.media import PublicAddressResolver, download

AUDIO = b"RIFF" + bytes(4) + b"WAVE" + bytes(200)


class FixedResolver(AbstractResolver):
    """Resolves each name to the addresses given, on the port asked for."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"{host} not found")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.names[host]
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1%eth0",
        "fd00::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
async def test_internal_address_rejected(address: str) -> None:
    guard = PublicAddressResolver(FixedResolver({"media.example": [address]}))

    with pytest.raises(OSError):
        await guard.resolve("media.example", 443)

    assert guard.rejected == {"media.example": [address]}


async def test_public_addresses_kept_internal_dropped() -> None:
    names = {"media.example": ["10.0.0.1", "93.184.216.34", "2606:2800:220:1::1"]}
    guard = PublicAddressResolver(FixedResolver(names))

    results = await guard.resolve("media.example", 443)

    assert [result["host"] for result in results] == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]
    assert guard.rejected == {}


async def test_listed_name_on_loopback_not_fetched(tmp_path: Path) -> None:
    host = MediaHost(files={"/R": AUDIO})
    async with media_host(host):
        port = host.base_url.rsplit(":", 1)[1]
        with pytest.raises(PermanentFailure) as error:
            await download(
                f"https://media.example:{port}/R",
                tmp_path / "R.wav",
                media_hosts=("media.example",),
                auth=None,
                max_bytes=1 << 20,
                timeout_seconds=10,
                resolver=FixedResolver({"media.example": ["127.0.0.1"]}),
            )

    assert "internal addresses 127.0.0.1" in str(error.value)
    assert host.requests == []
    assert not (tmp_path / "R.wav").exists()


async def test_redirect_to_internal_name_not_followed(tmp_path: Path) -> None:
    origin = MediaHost(redirects={"/start": "https://metadata.example/latest"})
    async with media_host(origin):
        with pytest.raises(PermanentFailure) as error:
            await download(
                f"{origin.base_url}/start",
                tmp_path / "R.wav",
                media_hosts=("127.0.0.1", "metadata.example"),
                auth=("AC1", "token"),
                max_bytes=1 << 20,
                timeout_seconds=10,
                resolver=FixedResolver({"metadata.example": ["169.254.169.254"]}),
            )

    assert "metadata.example" in str(error.value)
    assert origin.requests == ["/start"]


async def test_localhost_listed_by_name_is_fetched(tmp_path: Path) -> None:
    host = MediaHost(files={"/R": AUDIO})
    async with media_host(host):
        port = host.base_url.rsplit(":", 1)[1]
        saved = await download(
            f"http://localhost:{port}/R",
            tmp_path / "R.wav",
            media_hosts=("localhost",),
            auth=None,
            max_bytes=1 << 20,
            timeout_seconds=10,
        )

    assert saved.path.read_bytes() == AUDIO
    assert host.requests == ["/R"]
