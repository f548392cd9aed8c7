"""Both HTTP clients honour HTTP(S)_PROXY from the environment, as httpx did by itself:
where Telegram or the video service is only reachable through a proxy, setting the usual
variables is all an operator has to do. A raw socket on loopback plays the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from backend.transport import backend_transport, env_proxy
from bot.telegram.aiohttp_request import AiohttpRequest

ANSWER = b'{"ok":true,"result":true}'


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    """A proxy that answers every request itself; yields the request lines it saw."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0].decode())
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
            + ANSWER
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with server:
        yield seen


async def test_bot_api_calls_go_through_the_proxy(proxy: list[str]) -> None:
    request = AiohttpRequest()
    await request.initialize()
    try:
        status, body = await request.do_request("http://tg.invalid/bot1:T/getMe", "POST")
    finally:
        await request.shutdown()
    assert (status, body) == (200, ANSWER)
    assert proxy == ["POST http://tg.invalid/bot1:T/getMe HTTP/1.1"]


async def test_backend_calls_go_through_the_proxy(proxy: list[str]) -> None:
    transport = backend_transport(4, base_url="http://nemo.invalid")
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get("http://nemo.invalid/api/credits")
    assert response.json() == {"ok": True, "result": True}
    assert proxy == ["GET http://nemo.invalid/api/credits HTTP/1.1"]


def test_no_proxy_and_the_scheme_are_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,localhost")
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.telegram.org/bot1:T/getMe") == "http://proxy.local:3128"
    assert env_proxy("https://internal.example/api") is None
    assert env_proxy("http://api.nemovideo.ai/api") is None  # no HTTP_PROXY set
