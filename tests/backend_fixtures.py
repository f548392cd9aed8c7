"""Small scripted HTTP servers for backend client tests: real aiohttp on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from backend import ClientConfig, Credentials, NemoClient, build_client

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CAPTURE = Path("/work/shared/design/adk-sse-capture.txt")
CAPTURE_COPY = Path(__file__).with_name("data") / "adk-sse-capture.txt"


def capture_bytes() -> bytes:
    """The byte-exact ADK capture (the repo copy, else the shared design file)."""
    path = CAPTURE_COPY if CAPTURE_COPY.exists() else CAPTURE
    return path.read_bytes()


def capture_streams() -> dict[str, bytes]:
    """Each captured stream's body, keyed by the message that produced it."""
    out: dict[str, bytes] = {}
    for section in capture_bytes().split(b"### ")[1:]:
        head, _, body = section.partition(b"\n")
        message = head.split(b"'")[1].decode()
        out[message] = body
    return out


@dataclass
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]  # header names are case-insensitive on the wire
    body: bytes


@dataclass
class Scripted:
    """Answers each (method, path) with queued handlers (the last repeats); records requests."""

    routes: dict[tuple[str, str], list[Handler]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    def on(self, method: str, path: str, *handlers: Handler) -> None:
        self.routes[(method, path)] = list(handlers)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, CIMultiDict(request.headers), body))
        queue = self.routes.get((request.method, request.path))
        if not queue:
            return web.json_response({"code": 404, "message": "no route"}, status=404)
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        return await handler(request)

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def reply(
    data: Any = None,
    *,
    status: int = 200,
    body: Any = ...,
    raw: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Handler:
    """A JSON answer: `{"code":0,"data":data}` by default, or `body` as given, or raw bytes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if raw is not None:
            return web.Response(status=status, body=raw, content_type=content_type, headers=headers)
        payload = {"code": 0, "message": "success", "data": data} if body is ... else body
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(
            status=status,
            text=json.dumps(payload),
            content_type="application/json",
            headers=headers,
        )

    return handler


def sse(*pieces: bytes | float, cut: bool = False, status: int = 200) -> Handler:
    """An event stream written piece by piece (a float sleeps); `cut` drops the connection."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=status, headers={"Content-Type": "text/event-stream; charset=utf-8"}
        )
        await response.prepare(request)
        for piece in pieces:
            if isinstance(piece, float | int):
                await asyncio.sleep(piece)
            else:
                await response.write(piece)
        if cut:
            transport = request.transport
            assert transport is not None
            transport.abort()
            return response
        await response.write_eof()
        return response

    return handler


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    server = Scripted()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def make_client(base_url: str, **overrides: Any) -> NemoClient:
    overrides.setdefault("rate_limit_wait", 0.05)
    config = ClientConfig(base_url=base_url, **overrides)
    return build_client(config)


def anon(token: str = "nmv_usr_secretTOKEN1234", client_id: str = "cid-1") -> Credentials:
    return Credentials(token=token, client_id=client_id, expires_at=None, anonymous=True)
