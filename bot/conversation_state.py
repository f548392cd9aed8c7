"""What every part of the conversation shares: a chat's jobs in this process, one piece of
work for one chat (`Turn`), reading and writing the chat's state, and safe replies."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend import NemoApi
from bot.conversation_text import draft_of, pick_lang
from bot.io import Button, Inbound, Outbox
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import ChatState, ChatStore, PendingExport
from bot.texts import t

__all__ = ["ChatRuntime", "ConversationState", "Entry", "Turn", "new_ref", "safe_send"]

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


class ConversationState:
    """The base of every part of the conversation: the store, settings, metrics and
    per-chat runtimes (set by `Conversation.__init__`), and a chat's state as turns read
    and write it."""

    _store: ChatStore
    _settings: Settings
    _metrics: Metrics | None
    _chats: dict[int, ChatRuntime]

    def _runtime(self, chat_id: int) -> ChatRuntime:
        rt = self._chats.get(chat_id)
        if rt is None:
            rt = self._chats[chat_id] = ChatRuntime()
        return rt

    # --- state ---------------------------------------------------------------------------

    def _lang(self, state: ChatState, msg: Inbound | None) -> str:
        if msg is None:
            return state.lang or "en"
        return pick_lang(
            stored=state.lang,
            locked=state.lang_locked,
            language_code=msg.language_code,
            text=msg.text,
        )

    async def _persist_lang(self, turn: Turn) -> None:
        if turn.state.lang != turn.lang:
            lang = turn.lang

            def apply(s: ChatState) -> None:
                if not s.lang_locked:
                    s.lang = lang

            await self._update(turn, apply)

    async def _update(self, turn: Turn, change: Callable[[ChatState], None]) -> ChatState:
        """Read, change and write the chat's state; serialised within this process so a
        job and a control message never overwrite each other's fields."""
        async with turn.rt.state_lock:
            state = await self._store.load(turn.chat_id)
            change(state)
            await self._store.save(state)
        turn.state = state
        return state

    async def _remember_draft(self, turn: Turn, draft: Mapping[str, Any] | None) -> None:
        value = draft_of(draft)

        def apply(s: ChatState) -> None:
            s.last_draft = value

        await self._update(turn, apply)

    # --- small things --------------------------------------------------------------------

    def _button(self, action: str, lang: str) -> Button:
        return Button(t(f"btn_{action}", lang), data=f"a:{action}")

    def _menu(self, turn: Turn) -> tuple[Button, ...]:
        return (self._button("status", turn.lang), self._button("credits", turn.lang))

    def _count(self, intent: str) -> None:
        if self._metrics:
            self._metrics.updates.labels(intent).inc()


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
