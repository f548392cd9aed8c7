"""The chat store in process memory: the same contract as Redis, for trials and tests."""

from __future__ import annotations

import json
import time
from collections import deque

from bot.store.base import ChatState, Taken, decode_state, encode_state, token_ttl

__all__ = ["MemoryChatStore"]


class MemoryChatStore:
    """The same contract in process memory: for the embedded default and trials."""

    def __init__(self, idle_ttl_s: float = 30 * 86400) -> None:
        self._idle_s = idle_ttl_s
        self._data: dict[str, tuple[str, float]] = {}
        self._pending: set[int] = set()
        self._inbox: dict[int, deque[str]] = {}
        self._running: dict[int, str] = {}
        self._queued: set[int] = set()

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

    async def load(self, chat_id: int) -> ChatState:
        key = f"chat:{chat_id}"
        return decode_state(chat_id, self._get(key), self._get(f"{key}:token"))

    async def save(self, state: ChatState) -> None:
        key = f"chat:{state.chat_id}"
        self._set(key, encode_state(state), self._idle_s)
        ttl = token_ttl(state, self._idle_s, time.time())
        if ttl is None or ttl <= 0:
            self._data.pop(f"{key}:token", None)
        else:
            token = {"token": state.token, "expires_at": state.token_expires_at}
            self._set(f"{key}:token", json.dumps(token), ttl)
        if state.pending:
            self._pending.add(state.chat_id)
        else:
            self._pending.discard(state.chat_id)

    async def delete(self, chat_id: int) -> None:
        for suffix in ("", ":token"):
            self._data.pop(f"chat:{chat_id}{suffix}", None)
        self._pending.discard(chat_id)

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
        return sorted(c for c in self._pending if self._get(f"chat:{c}") is not None)

    async def enqueue(self, chat_id: int, item: str, limit: int) -> int:
        self._queued.add(chat_id)
        inbox = self._inbox.setdefault(chat_id, deque())
        if len(inbox) >= limit:
            return 0
        inbox.append(item)
        return len(inbox)

    async def take_queued(self, chat_id: int, owner: str, ttl_s: float) -> Taken:
        if not await self.renew_lock(chat_id, owner, ttl_s):
            return Taken(held=False)
        current = self._running.get(chat_id)
        if current is not None:
            return Taken(held=True, item=current, leftover=True)
        inbox = self._inbox.get(chat_id)
        if not inbox:
            return Taken(held=True)
        item = self._running[chat_id] = inbox.popleft()
        return Taken(held=True, item=item)

    async def finish_queued(self, chat_id: int) -> None:
        self._running.pop(chat_id, None)

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
        self._data.clear()
        self._pending.clear()
        self._inbox.clear()
        self._running.clear()
        self._queued.clear()
