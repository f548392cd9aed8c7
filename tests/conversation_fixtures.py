"""Helpers for the conversation and terminal tests: the simulator over real HTTP, a real
store, and a recording outbox (a real implementation of the Outbox protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from backend.sim import SimConfig, Simulator
from bot.app import App, build_app
from bot.io import (
    Attachment,
    ChatAction,
    Inbound,
    Outbound,
    Progress,
    SendText,
    SendVideo,
    Stream,
)
from bot.settings import Settings, load_settings
from bot.store import ChatStore


def png_bytes(width: int = 64, height: int = 48, *, noise: bool = False) -> bytes:
    """A real PNG image: flat grey (tiny), or noise that does not compress."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rng = random.Random(width * 7919 + height)
    raw = b"".join(
        b"\x00" + (rng.randbytes(width) if noise else b"\x80" * width) for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass
class FileStub:
    """An attachment whose reads are counted, to prove preflight runs before any read."""

    name: str
    mime: str | None
    data: bytes
    declared_size: int | None = None
    reads: int = 0

    def attachment(self) -> Attachment:
        async def read() -> bytes:
            self.reads += 1
            return self.data

        size = self.declared_size if self.declared_size is not None else len(self.data)
        return Attachment(name=self.name, mime=self.mime, size=size, read=read)


@dataclass
class Recorder:
    """Records every operation in order and lets a test wait for one to appear."""

    ops: list[Outbound] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, op: Outbound) -> None:
        self.ops.append(op)
        self._changed.set()

    def visible(self, start: int = 0) -> list[Outbound]:
        """What a user would notice: everything but chat actions and interim stream edits."""
        return [
            op
            for op in self.ops[start:]
            if not isinstance(op, ChatAction) and not (isinstance(op, Stream) and not op.final)
        ]

    def texts(self, start: int = 0) -> list[str]:
        """Texts of messages and final stream messages, in order."""
        out: list[str] = []
        for op in self.ops[start:]:
            if isinstance(op, SendText) or (isinstance(op, Stream) and op.final):
                out.append(op.text)
        return out

    def joined(self, start: int = 0) -> str:
        return "\n".join(self.texts(start))

    def progress(self, start: int = 0) -> list[Progress]:
        return [op for op in self.ops[start:] if isinstance(op, Progress)]

    def videos(self, start: int = 0) -> list[SendVideo]:
        return [op for op in self.ops[start:] if isinstance(op, SendVideo)]

    def streams(self, start: int = 0) -> list[Stream]:
        return [op for op in self.ops[start:] if isinstance(op, Stream)]

    async def wait_for(
        self, predicate: Callable[[Outbound], bool], timeout: float = 15.0, start: int = 0
    ) -> Outbound:
        async def scan() -> Outbound:
            seen = start
            while True:
                for op in self.ops[seen:]:
                    if predicate(op):
                        return op
                seen = len(self.ops)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)


@dataclass
class Harness:
    """One conversation wired to the simulator and a store, as the app builds it."""

    sim: Simulator
    settings: Settings
    store: ChatStore
    app: App
    out: Recorder
    chat_id: int = 1

    @property
    def conv(self) -> Any:
        return self.app.conversation

    def inbound(
        self,
        text: str = "",
        *,
        lang: str | None = "en",
        files: tuple[FileStub, ...] = (),
        button: str | None = None,
        chat_id: int | None = None,
        update_id: int | None = None,
    ) -> Inbound:
        return Inbound(
            update_id=update_id,
            chat_id=chat_id if chat_id is not None else self.chat_id,
            user_id=chat_id if chat_id is not None else self.chat_id,
            text=text,
            language_code=lang,
            attachments=tuple(f.attachment() for f in files),
            callback_data=button,
        )

    async def say(self, text: str = "", **kw: Any) -> list[str]:
        """Handle one message to the end and return the texts it produced."""
        mark = len(self.out.ops)
        await self.conv.handle(self.inbound(text, **kw), self.out)
        return self.out.texts(mark)

    def later(self, text: str = "", **kw: Any) -> asyncio.Task[None]:
        """Handle a message in the background, as a front end does with concurrent updates."""
        return asyncio.create_task(self.conv.handle(self.inbound(text, **kw), self.out))

    async def state(self, chat_id: int | None = None) -> Any:
        return await self.store.load(chat_id if chat_id is not None else self.chat_id)

    async def token(self) -> str:
        state = await self.state()
        assert state.token
        return str(state.token)


def conv_settings(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nemo_api_base": base_url,
        "nemo_token": None,
        "redis_url": None,
        "export_poll_interval_s": 0.1,
        "export_deadline_s": 60,
        "quiet_notice_s": 30,
        "lock_ttl_s": 5,
        "rate_limit_wait_s": 0.05,
        "request_timeout_s": 10,
        "chat_timeout_s": 60,
    }
    values.update(overrides)
    return load_settings(**values)


HarnessFactory = Callable[..., Awaitable[Harness]]


@contextlib.asynccontextmanager
async def harnesses(default_store: ChatStore) -> AsyncIterator[HarnessFactory]:
    """Builds harnesses (by default on the test's Redis store) and closes them all after."""
    made: list[Harness] = []
    sims: list[Simulator] = []

    async def factory(
        *,
        sim: Simulator | None = None,
        sim_config: SimConfig | None = None,
        store: ChatStore | None = None,
        **settings_overrides: Any,
    ) -> Harness:
        if sim is None:
            sim = Simulator(sim_config or quick_sim_config())
            await sim.start()
            sims.append(sim)
        settings = conv_settings(sim.base_url, **settings_overrides)
        chat_store = store if store is not None else default_store
        app = build_app(settings, "terminal", store=chat_store)
        harness = Harness(sim=sim, settings=settings, store=chat_store, app=app, out=Recorder())
        made.append(harness)
        return harness

    try:
        yield factory
    finally:
        for harness in made:
            await harness.app.conversation.aclose()
            await harness.app.client.aclose()
            await harness.app.http.aclose()
        for sim in sims:
            await sim.stop()


def assert_clean(texts: list[str]) -> None:
    """Nothing raw reaches the user: no traceback, JSON or token."""
    for text in texts:
        assert "Traceback" not in text and '{"' not in text and "nmv_" not in text, text


def quick_sim_config(**overrides: Any) -> SimConfig:
    """A simulator that answers in milliseconds and renders in about a second."""
    values: dict[str, Any] = {
        "render_seconds": 1.0,
        "render_pending_s": 0.1,
        "chunk_delay_s": 0.002,
        "generate_seconds": 0.05,
        "no_text_every": 0,
        "export_cost": 5,
    }
    values.update(overrides)
    return SimConfig(**values)
