"""What every part of the conversation shares: a chat's jobs in this process, one piece of
work for one chat (`Turn`), the chat's state as turns read and write it, and safe replies."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend import NemoApi
from bot.conversation.text import draft_of, pick_lang
from bot.io import Inbound, Outbox
from bot.store import ChatState, ChatStore, PendingExport

__all__ = [
    "ChatRuntime",
    "ChatStates",
    "Entry",
    "FencedOutbox",
    "Turn",
    "lang_for",
    "new_ref",
    "safe_send",
]

# Every part of the conversation logs under one name, so its lines are found together.
log = logging.getLogger("bot.conversation")


@dataclass
class Entry:
    """A job: a message to handle, or a pending export to resume."""

    out: Outbox
    label: str
    snippet: str = ""
    msg: Inbound | None = None
    resume: PendingExport | None = None
    done: asyncio.Future[None] | None = None
    told: bool = False  # the user was told the message waits
    failed: bool = False  # it was answered with an error reply
    owned: bool = False  # `out` was made for this job and is closed after it


@dataclass
class ChatRuntime:
    """What this process knows about one chat's jobs."""

    # Messages handed in here and not yet run, by their inbox token: their `handle` call
    # waits, and they are answered through its outbox.
    waiters: dict[str, Entry] = field(default_factory=dict)
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)
    worker: asyncio.Task[None] | None = None
    current: asyncio.Task[None] | None = None
    current_entry: Entry | None = None
    cancel_requested: bool = False
    cancel_reported: bool = False
    # Until when (time.monotonic()) the chat's lock is surely still ours: past it, another
    # process may hold the chat, so a job here must not do anything more.
    lease_until: float = 0.0


@dataclass
class Turn:
    """One piece of work for one chat: its state, language, outbox and backend view."""

    chat_id: int
    out: Outbox
    lang: str
    state: ChatState
    rt: ChatRuntime
    api: NemoApi | None = None
    is_group: bool = False
    # Called before the first request that hands the message to the backend (see `sending`).
    on_send: Callable[[], Awaitable[None]] | None = None
    failed: bool = False  # answered with an error reply (the log line's outcome says so)

    async def sending(self) -> None:
        """Right before a request that changes the project (the agent's turn, a render, an
        upload, a new session): from here a crash leaves the message ambiguous, since the
        backend may have it, so it is reported rather than run again."""
        if self.on_send is not None:
            await self.on_send()


# Front end calls remembered to answer chats with no front end attached (the terminal,
# tests): the most recent chats only, so they do not pile up with every chat ever seen.
_LAST_OUTS = 4096


class ChatStates:
    """The chats this process has work for (their runtimes, dropped once idle) and their
    state in the store."""

    def __init__(self, store: ChatStore) -> None:
        self.store = store
        self._runtimes: dict[int, ChatRuntime] = {}
        self._last_outs: OrderedDict[int, Outbox] = OrderedDict()

    def runtime(self, chat_id: int) -> ChatRuntime:
        rt = self._runtimes.get(chat_id)
        if rt is None:
            rt = self._runtimes[chat_id] = ChatRuntime()
        return rt

    def known(self, chat_id: int) -> ChatRuntime | None:
        return self._runtimes.get(chat_id)

    def runtimes(self) -> Iterator[ChatRuntime]:
        return iter(list(self._runtimes.values()))

    def release_if_idle(self, chat_id: int) -> None:
        """Forget the chat's runtime when nothing here runs or waits for it."""
        rt = self._runtimes.get(chat_id)
        if (
            rt is not None
            and rt.worker is None
            and rt.current is None
            and not rt.waiters
            and not rt.admission.locked()
        ):
            del self._runtimes[chat_id]

    def remember_out(self, chat_id: int, out: Outbox) -> None:
        self._last_outs[chat_id] = out
        self._last_outs.move_to_end(chat_id)
        if len(self._last_outs) > _LAST_OUTS:
            self._last_outs.popitem(last=False)

    def last_out(self, chat_id: int) -> Outbox | None:
        return self._last_outs.get(chat_id)

    async def turn(self, chat_id: int, out: Outbox, msg: Inbound | None) -> Turn:
        """A turn for `chat_id` with its state read now and the language to answer in."""
        state = await self.store.load(chat_id)
        return Turn(
            chat_id=chat_id,
            out=out,
            lang=lang_for(state, msg),
            state=state,
            rt=self.runtime(chat_id),
            is_group=msg.is_group if msg is not None else False,
        )

    # Each write below changes one part of the chat's state in the store, atomically, and
    # the turn's copy with it: a write never carries back what another process changed.

    async def persist_lang(self, turn: Turn) -> None:
        """The language detected for this turn, kept unless the user chose one."""
        if turn.state.lang != turn.lang and not turn.state.lang_locked:
            await self.store.set_lang(turn.chat_id, turn.lang, None)
            turn.state.lang = turn.lang

    async def set_lang(self, turn: Turn, lang: str, *, locked: bool) -> None:
        await self.store.set_lang(turn.chat_id, lang, locked)
        turn.state.lang, turn.state.lang_locked = lang, locked

    async def remember_draft(self, turn: Turn, draft: Mapping[str, Any] | None) -> None:
        value = draft_of(draft)
        await self.store.set_draft(turn.chat_id, value)
        turn.state.last_draft = value

    async def set_session(
        self, turn: Turn, session_id: str, task_id: str | None, lang: str | None = None
    ) -> None:
        await self.store.set_session(turn.chat_id, session_id, task_id, lang)
        turn.state.session_id, turn.state.task_id = session_id, task_id
        turn.state.last_draft = None
        if lang is not None:
            turn.state.lang = lang

    async def claim_client_id(self, turn: Turn, client_id: str) -> str:
        turn.state.client_id = await self.store.claim_client_id(turn.chat_id, client_id)
        return turn.state.client_id

    async def set_token(
        self, turn: Turn, token: str, expires_at: float | None, client_id: str | None
    ) -> None:
        await self.store.set_token(turn.chat_id, token, expires_at, client_id)
        turn.state.token, turn.state.token_expires_at = token, expires_at
        if client_id:
            turn.state.client_id = client_id

    async def add_pending(self, turn: Turn, pending: PendingExport) -> None:
        await self.store.add_pending(turn.chat_id, pending)
        turn.state.pending.append(pending)

    async def set_last_video(self, turn: Turn, video: Mapping[str, str]) -> None:
        """The last video delivered, and the version of the project it shows."""
        await self.store.set_last_video(turn.chat_id, video)
        turn.state.last_video = dict(video)

    async def claim_pending(self, turn: Turn, render_id: str) -> bool:
        """True for the one caller that removes the export from the store: it alone tells
        the user how it ended."""
        claimed = await self.store.claim_pending(turn.chat_id, render_id)
        turn.state.pending = [p for p in turn.state.pending if p.render_id != render_id]
        return claimed


class FencedOutbox:
    """A job's outbox that sends only while the chat's lock is surely held; past the
    lease, the job is stopped (cancelled) before anything reaches the user, since another
    process may be running the chat by now."""

    def __init__(self, out: Outbox, rt: ChatRuntime) -> None:
        self._out = out
        self._rt = rt

    async def send(self, op: Any) -> None:
        if time.monotonic() >= self._rt.lease_until:
            log.warning("chat lock lapsed, job stopped before its next answer")
            raise asyncio.CancelledError
        await self._out.send(op)


def lang_for(state: ChatState, msg: Inbound | None) -> str:
    """The language to answer a message in (or, without one, the chat's language)."""
    if msg is None:
        return state.lang or "en"
    return pick_lang(
        stored=state.lang,
        locked=state.lang_locked,
        language_code=msg.language_code,
        text=msg.text,
    )


def new_ref(prefix: str = "") -> str:
    """A short reference: error numbers users can quote, and op refs for front ends."""
    token = secrets.token_hex(4)
    return f"{prefix}-{token}" if prefix else token.upper()[:6]


async def safe_send(out: Outbox, op: Any) -> None:
    """Send without letting a failing front end turn an answer into a crash."""
    try:
        await out.send(op)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("front end failed to send %s", type(op).__name__, exc_info=True)
