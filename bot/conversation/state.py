"""What every part of the conversation shares: a chat's jobs in this process, one piece of
work for one chat (`Turn`), the chat's state as turns read and write it, and safe replies."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend import NemoApi
from bot.conversation.text import draft_of, pick_lang
from bot.io import Inbound, Outbox
from bot.store import ChatState, ChatStore, PendingExport

__all__ = ["ChatRuntime", "ChatStates", "Entry", "Turn", "lang_for", "new_ref", "safe_send"]

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
    state_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_out: Outbox | None = None


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


class ChatStates:
    """The chats this process knows (their runtimes) and their state in the store."""

    def __init__(self, store: ChatStore) -> None:
        self.store = store
        self._runtimes: dict[int, ChatRuntime] = {}

    def runtime(self, chat_id: int) -> ChatRuntime:
        rt = self._runtimes.get(chat_id)
        if rt is None:
            rt = self._runtimes[chat_id] = ChatRuntime()
        return rt

    def known(self, chat_id: int) -> ChatRuntime | None:
        return self._runtimes.get(chat_id)

    def runtimes(self) -> Iterator[ChatRuntime]:
        return iter(list(self._runtimes.values()))

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

    async def update(self, turn: Turn, change: Callable[[ChatState], None]) -> ChatState:
        """Read, change and write the chat's state; serialised within this process so a
        job and a control message never overwrite each other's fields."""
        async with turn.rt.state_lock:
            state = await self.store.load(turn.chat_id)
            change(state)
            await self.store.save(state)
        turn.state = state
        return state

    async def persist_lang(self, turn: Turn) -> None:
        if turn.state.lang != turn.lang:
            lang = turn.lang

            def apply(s: ChatState) -> None:
                if not s.lang_locked:
                    s.lang = lang

            await self.update(turn, apply)

    async def remember_draft(self, turn: Turn, draft: Mapping[str, Any] | None) -> None:
        value = draft_of(draft)

        def apply(s: ChatState) -> None:
            s.last_draft = value

        await self.update(turn, apply)


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
