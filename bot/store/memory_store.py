"""The chat store in process memory: the same contract as Redis, for trials and tests."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.store.base import (
    SEEN_TTL_S,
    ChatState,
    Enqueued,
    PendingExport,
    Taken,
    decode_state,
    encode_draft,
    encode_pending,
    encode_token,
    token_ttl,
)

__all__ = ["MemoryChatStore"]

# Expired entries are swept out after this many writes, so short-lived records (update
# ids, locks) do not pile up with every chat ever seen.
_PURGE_EVERY = 4096


@dataclass
class _Chat:
    fields: dict[str, str] = field(default_factory=dict)
    draft: str | None = None
    pending: dict[str, str] = field(default_factory=dict)


class MemoryChatStore:
    """The same contract in process memory: for the embedded default and trials."""

    def __init__(self, idle_ttl_s: float = 30 * 86400) -> None:
        self._idle_s = idle_ttl_s
        self._chats: dict[int, tuple[_Chat, float]] = {}
        self._data: dict[str, tuple[str, float]] = {}
        self._inbox: dict[int, deque[str]] = {}
        self._running: dict[int, str] = {}
        self._sent: set[int] = set()
        self._queued: set[int] = set()
        self._writes = 0

    def _get(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item[0]

    def _set(self, key: str, value: str, ttl_s: float) -> None:
        self._data[key] = (value, time.monotonic() + ttl_s)
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._purge()

    def _purge(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, deadline) in self._data.items() if deadline <= now]:
            del self._data[key]
        for chat_id in [c for c, (_, deadline) in self._chats.items() if deadline <= now]:
            del self._chats[chat_id]

    def _chat(self, chat_id: int) -> _Chat | None:
        item = self._chats.get(chat_id)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._chats[chat_id]
            return None
        return item[0]

    def _write(self, chat_id: int) -> _Chat:
        """The chat's state for a write, its idle expiry renewed."""
        chat = self._chat(chat_id) or _Chat()
        self._chats[chat_id] = (chat, time.monotonic() + self._idle_s)
        return chat

    async def load(self, chat_id: int) -> ChatState:
        chat = self._chat(chat_id) or _Chat()
        token = self._get(f"token:{chat_id}")
        return decode_state(chat_id, chat.fields, token, chat.draft, chat.pending.values())

    async def claim_client_id(self, chat_id: int, client_id: str) -> str:
        return self._write(chat_id).fields.setdefault("client_id", client_id)

    async def set_token(
        self, chat_id: int, token: str, expires_at: float | None, client_id: str | None
    ) -> None:
        chat = self._write(chat_id)
        ttl = token_ttl(expires_at, self._idle_s, time.time())
        if ttl > 0:
            self._set(f"token:{chat_id}", encode_token(token, expires_at), ttl)
        else:
            self._data.pop(f"token:{chat_id}", None)
        if client_id:
            chat.fields["client_id"] = client_id

    async def set_session(
        self, chat_id: int, session_id: str, task_id: str | None, lang: str | None = None
    ) -> None:
        chat = self._write(chat_id)
        chat.fields |= {"session_id": session_id, "task_id": task_id or ""}
        if lang is not None:
            chat.fields["lang"] = lang
        chat.draft = None

    async def set_lang(self, chat_id: int, lang: str, locked: bool | None) -> None:
        chat = self._write(chat_id)
        if locked is None:
            if chat.fields.get("lang_locked") != "1":
                chat.fields["lang"] = lang
            return
        chat.fields |= {"lang": lang, "lang_locked": "1" if locked else "0"}

    async def set_draft(self, chat_id: int, draft: Mapping[str, Any] | None) -> None:
        self._write(chat_id).draft = None if draft is None else encode_draft(draft)

    async def add_pending(self, chat_id: int, pending: PendingExport) -> None:
        self._write(chat_id).pending[pending.render_id] = encode_pending(pending)

    async def claim_pending(self, chat_id: int, render_id: str) -> bool:
        chat = self._chat(chat_id)
        return chat is not None and chat.pending.pop(render_id, None) is not None

    async def delete(self, chat_id: int) -> None:
        self._chats.pop(chat_id, None)
        self._data.pop(f"token:{chat_id}", None)

    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"lock:{chat_id}"
        if self._get(key) is not None:
            return False
        self._set(key, owner, ttl_s)
        return True

    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"lock:{chat_id}"
        if self._get(key) != owner:
            return False
        self._set(key, owner, ttl_s)
        return True

    async def lock_holder(self, chat_id: int) -> str | None:
        return self._get(f"lock:{chat_id}")

    async def unlock(self, chat_id: int, owner: str) -> None:
        key = f"lock:{chat_id}"
        if self._get(key) == owner:
            del self._data[key]

    async def first_seen(self, update_id: int, ttl_s: float = 86400, scope: str = "update") -> bool:
        key = f"{scope}:{update_id}"
        if self._get(key) is not None:
            return False
        self._set(key, "1", ttl_s)
        return True

    async def chats_with_pending(self) -> list[int]:
        return sorted(c for c in list(self._chats) if (chat := self._chat(c)) and chat.pending)

    async def enqueue(
        self, chat_id: int, item: str, limit: int, update_id: int | None = None
    ) -> Enqueued:
        if update_id is not None and not await self.first_seen(
            update_id, SEEN_TTL_S, scope=f"seen:{chat_id}"
        ):
            return Enqueued(duplicate=True)
        self._queued.add(chat_id)
        inbox = self._inbox.setdefault(chat_id, deque())
        if len(inbox) >= limit:
            return Enqueued(length=0)
        inbox.append(item)
        return Enqueued(length=len(inbox))

    async def take_queued(self, chat_id: int, owner: str, ttl_s: float) -> Taken:
        if not await self.renew_lock(chat_id, owner, ttl_s):
            return Taken(held=False)
        current = self._running.get(chat_id)
        if current is not None:
            return Taken(held=True, item=current, leftover=True, sent=chat_id in self._sent)
        inbox = self._inbox.get(chat_id)
        if not inbox:
            return Taken(held=True)
        item = self._running[chat_id] = inbox.popleft()
        self._sent.discard(chat_id)
        return Taken(held=True, item=item)

    async def mark_sent(self, chat_id: int, owner: str) -> bool:
        if self._get(f"lock:{chat_id}") != owner:
            return False
        self._sent.add(chat_id)
        return True

    async def finish_queued(self, chat_id: int, owner: str) -> bool:
        if self._get(f"lock:{chat_id}") != owner:
            return False
        self._running.pop(chat_id, None)
        self._sent.discard(chat_id)
        return True

    async def queue_length(self, chat_id: int) -> int:
        return len(self._inbox.get(chat_id) or ())

    async def unindex_if_empty(self, chat_id: int) -> int:
        length = await self.queue_length(chat_id)
        if not length:
            self._queued.discard(chat_id)
            self._inbox.pop(chat_id, None)
        return length

    async def chats_with_work(self) -> list[int]:
        return sorted(set(await self.chats_with_pending()) | self._queued)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._chats.clear()
        self._data.clear()
        self._inbox.clear()
        self._running.clear()
        self._sent.clear()
        self._queued.clear()
