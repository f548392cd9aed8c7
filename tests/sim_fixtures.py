"""Helpers for the simulator tests: a raw httpx view of the API and a plain SSE line reader.

Deliberately not the project's client: these tests pin the wire format the simulator speaks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from backend.sim import SimConfig, Simulator

ATTRIBUTION = {
    "X-Skill-Source": "nemobot",
    "X-Skill-Version": "0.1.0",
    "X-Skill-Platform": "telegram",
}


@dataclass
class Stream:
    """One /run_sse answer: the raw body, its event blocks and the decoded JSON events."""

    status: int
    content_type: str
    body: bytes
    blocks: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)

    @property
    def adk(self) -> list[dict[str, Any]]:
        """The ADK events (not heartbeats)."""
        return [e for e in self.events if isinstance(e, dict) and "invocationId" in e]

    @property
    def keepalives(self) -> list[str]:
        return [
            b
            for b in self.blocks
            if b in ("data: ", ": keep-alive") or b == 'data: {"type":"heartbeat"}'
        ]

    def texts(self, *, partial: bool | None = None) -> list[str]:
        out = []
        for e in self.adk:
            if partial is not None and bool(e.get("partial")) != partial:
                continue
            for part in (e.get("content") or {}).get("parts", []):
                if "text" in part:
                    out.append(part["text"])
        return out

    def calls(self) -> list[dict[str, Any]]:
        return [
            p["functionCall"]
            for e in self.adk
            for p in (e.get("content") or {}).get("parts", [])
            if "functionCall" in p
        ]

    def deltas(self) -> list[dict[str, Any]]:
        return [e["actions"]["stateDelta"] for e in self.adk if e["actions"]["stateDelta"]]


def parse_stream(status: int, content_type: str, body: bytes) -> Stream:
    stream = Stream(status, content_type, body)
    text = body.decode()
    stream.blocks = [b for b in text.split("\n\n") if b]
    for block in stream.blocks:
        if not block.startswith("data: ") or "\n" in block:
            stream.garbage.append(block)
            continue
        payload = block[len("data: ") :]
        if payload == "":
            continue
        try:
            stream.events.append(json.loads(payload))
        except ValueError:
            stream.garbage.append(block)
    return stream


class Api:
    """Raw HTTP calls against a running simulator, as one anonymous user."""

    def __init__(self, sim: Simulator, http: httpx.AsyncClient) -> None:
        self.sim = sim
        self.http = http
        self.client_id = str(uuid.uuid4())
        self.token = ""

    def headers(self, token: str | None = None, attribution: bool = True) -> dict[str, str]:
        out = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        if attribution:
            out.update(ATTRIBUTION)
        return out

    async def login(self, client_id: str | None = None) -> dict[str, Any]:
        r = await self.http.post(
            "/api/auth/anonymous-token", headers={"X-Client-Id": client_id or self.client_id}
        )
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        self.token = data["token"]
        return data

    async def new_session(self, language: str = "en") -> str:
        r = await self.http.post(
            "/api/tasks/me/with-session/nemo_agent",
            json={"task_name": "project", "language": language},
            headers=self.headers(),
        )
        assert r.status_code == 200, r.text
        sid: str = r.json()["data"]["session_id"]
        return sid

    @staticmethod
    def chat_body(sid: str, text: str) -> dict[str, Any]:
        return {
            "app_name": "nemo_agent",
            "user_id": "me",
            "session_id": sid,
            "new_message": {"role": "user", "parts": [{"text": text}]},
        }

    async def chat_raw(self, sid: str, text: str, token: str | None = None) -> httpx.Response:
        return await self.http.post(
            "/run_sse",
            json=self.chat_body(sid, text),
            headers={**self.headers(token), "Accept": "text/event-stream"},
        )

    def chat_stream(self, sid: str, text: str) -> AbstractAsyncContextManager[httpx.Response]:
        """The agent's answer as it arrives: `async with api.chat_stream(...) as r`."""
        return self.http.stream(
            "POST", "/run_sse", json=self.chat_body(sid, text), headers=self.headers()
        )

    async def chat(self, sid: str, text: str) -> Stream:
        r = await self.chat_raw(sid, text)
        return parse_stream(r.status_code, r.headers.get("content-type", ""), r.content)

    async def state(self, sid: str) -> httpx.Response:
        return await self.http.get(f"/api/state/nemo_agent/me/{sid}/latest", headers=self.headers())

    async def draft(self, sid: str) -> dict[str, Any]:
        r = await self.state(sid)
        assert r.status_code == 200, r.text
        draft: dict[str, Any] = r.json()["data"]["state"]["draft"]
        return draft

    async def credits(self) -> httpx.Response:
        return await self.http.get("/api/credits/balance/simple", headers=self.headers())

    async def upload(self, sid: str, *files: tuple[str, bytes, str]) -> httpx.Response:
        return await self.http.post(
            f"/api/upload-video/nemo_agent/me/{sid}",
            files=[("files", f) for f in files],
            headers=self.headers(),
        )

    async def start_render(
        self, sid: str, draft: dict[str, Any], render_id: str, **headers: str
    ) -> httpx.Response:
        return await self.http.post(
            "/api/render/proxy/lambda",
            json={
                "id": render_id,
                "sessionId": sid,
                "draft": draft,
                "output": {"format": "mp4", "quality": "high"},
            },
            headers=headers or self.headers(),
        )

    async def render_status(self, render_id: str) -> httpx.Response:
        return await self.http.get(f"/api/render/proxy/lambda/{render_id}", headers=self.headers())


PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def fast(**overrides: Any) -> SimConfig:
    """A config with no artificial delays in the chat stream."""
    base: dict[str, Any] = {"chunk_delay_s": 0.0, "generate_seconds": 0.0, "edit_seconds": 0.0}
    return SimConfig(**{**base, **overrides})


@asynccontextmanager
async def running(config: SimConfig) -> AsyncIterator[Api]:
    """A simulator on a free 127.0.0.1 port and an httpx client pointed at it."""
    sim = Simulator(config)
    url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Api(sim, http)
    finally:
        await sim.stop()
