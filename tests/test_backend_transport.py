"""The client's transport (httpx over aiohttp): every failure surfaces as the httpx error
that says what happened, so the client maps it to the right NemoError. Raw sockets on
loopback play the misbehaving server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from backend.transport import backend_transport
from tests.redis_server import free_port

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(reply: Reply) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await reply(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=backend_transport(10), timeout=5) as client:
        yield client


async def test_answers_and_streams_pass_through(http: httpx.AsyncClient) -> None:
    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Trace: a\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"8\r\ndata: 1\n\r\n8\r\ndata: 2\n\r\n0\r\n\r\n"
        )
        await writer.drain()

    server, url = await _serve(ok)
    async with server, http.stream("POST", url + "/run_sse", json={"a": "é"}) as response:
        chunks = [c async for c in response.aiter_bytes()]
    assert response.status_code == 200 and response.headers["x-trace"] == "a"
    assert b"".join(chunks) == b"data: 1\ndata: 2\n"


async def test_refused_connection_is_a_connect_error(http: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError):
        await http.get(f"http://127.0.0.1:{free_port()}/")


async def test_hang_up_after_the_request_is_a_protocol_error(http: httpx.AsyncClient) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    server, url = await _serve(hang_up)
    async with server:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.post(url + "/run_sse", json={})
    # Not a connect failure: the server may have acted on the request.
    assert not isinstance(caught.value, httpx.ConnectError | httpx.TimeoutException)


async def test_a_malformed_answer_is_a_protocol_error(http: httpx.AsyncClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HELLO THERE\r\n\r\n")
        await writer.drain()

    server, url = await _serve(garbage)
    async with server:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url + "/")


async def test_a_body_cut_short_is_a_transport_error(http: httpx.AsyncClient) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    server, url = await _serve(cut)
    async with server:
        with pytest.raises(httpx.TransportError):
            await http.get(url + "/")


async def test_silence_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    server, url = await _serve(silent)
    async with server, httpx.AsyncClient(transport=backend_transport(10)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url + "/", timeout=httpx.Timeout(5, read=0.2))
