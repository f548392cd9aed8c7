"""Per-chat state: Redis in production, memory as the embedded default.

Redis layout (every key of one chat shares the hash tag `{<chat id>}`, so a Redis
Cluster keeps them on one slot):

    <ns>:chat:{<id>}         JSON of ChatState without the token; expires when idle
    <ns>:chat:{<id>}:token   JSON {token, expires_at}; expires with the token
    <ns>:chat:{<id>}:lock    owner of the chat's running job; expires on crash
    <ns>:update:<update id>  set once per Telegram update, for deduplication
    <ns>:pending             set of chat ids with exports in flight
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass
class PendingExport:
    """An export in flight, with enough to resume polling after a restart."""

    render_id: str
    started_at: float
    lang: str = "en"
    progress_ref: str | None = None


@dataclass
class ChatState:
    chat_id: int
    token: str | None = field(default=None, repr=False)
    token_expires_at: float | None = None
    client_id: str | None = None
    session_id: str | None = None
    task_id: str | None = None
    lang: str | None = None
    lang_locked: bool = False
    pending: list[PendingExport] = field(default_factory=list)
    last_draft: dict[str, Any] | None = None


class ChatStore(Protocol):
    async def load(self, chat_id: int) -> ChatState: ...
    async def save(self, state: ChatState) -> None: ...
    async def delete(self, chat_id: int) -> None: ...
    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool: ...
    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool: ...
    async def unlock(self, chat_id: int, owner: str) -> None: ...
    async def first_seen(self, update_id: int, ttl_s: float = 86400) -> bool: ...
    async def chats_with_pending(self) -> list[int]: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


def encode_state(state: ChatState) -> str:
    """The chat's state as stored, without the token (kept under its own key and TTL)."""
    body = asdict(state)
    del body["token"], body["token_expires_at"]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def decode_state(chat_id: int, raw: str | bytes | None, token_raw: str | bytes | None) -> ChatState:
    """Validate what was read; a corrupted or foreign value is logged and treated as absent."""
    state = ChatState(chat_id=chat_id)
    if raw is not None:
        try:
            body = json.loads(raw)
            pending = [PendingExport(**p) for p in body.get("pending") or []]
            draft = body.get("last_draft")
            state = ChatState(
                chat_id=chat_id,
                client_id=_opt_str(body.get("client_id")),
                session_id=_opt_str(body.get("session_id")),
                task_id=_opt_str(body.get("task_id")),
                lang=_opt_str(body.get("lang")),
                lang_locked=bool(body.get("lang_locked", False)),
                pending=pending,
                last_draft=draft if isinstance(draft, dict) else None,
            )
        except (ValueError, TypeError, AttributeError):
            log.warning("chat state unreadable, starting afresh", extra={"chat_id": chat_id})
    if token_raw is not None:
        try:
            tok = json.loads(token_raw)
            state.token = _opt_str(tok["token"])
            expires = tok.get("expires_at")
            state.token_expires_at = float(expires) if expires is not None else None
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("chat token unreadable, ignoring it", extra={"chat_id": chat_id})
    return state


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _token_ttl(state: ChatState, idle_ttl_s: float, now: float) -> float | None:
    """Seconds the token key may live: until the token expires, at most as long as the chat."""
    if state.token is None:
        return None
    if state.token_expires_at is None:
        return idle_ttl_s
    return min(idle_ttl_s, state.token_expires_at - now)


class RedisChatStore:
    """Chat state on Redis: one round trip per read and per write."""

    _RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
    _UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501

    def __init__(self, redis: Redis, namespace: str = "nemobot", idle_ttl_s: float = 30 * 86400):
        self._redis = redis
        self._ns = namespace
        self._idle_ms = int(idle_ttl_s * 1000)
        self._idle_s = idle_ttl_s

    @classmethod
    def from_url(
        cls, url: str, namespace: str = "nemobot", idle_ttl_s: float = 30 * 86400
    ) -> RedisChatStore:
        redis = Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
        )
        return cls(redis, namespace, idle_ttl_s)

    def _chat(self, chat_id: int) -> str:
        return f"{self._ns}:chat:{{{chat_id}}}"

    async def load(self, chat_id: int) -> ChatState:
        key = self._chat(chat_id)
        raw, token_raw = await self._redis.mget([key, f"{key}:token"])
        return decode_state(chat_id, raw, token_raw)

    async def save(self, state: ChatState) -> None:
        key = self._chat(state.chat_id)
        ttl = _token_ttl(state, self._idle_s, time.time())
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(key, encode_state(state), px=self._idle_ms)
        if ttl is None or ttl <= 0:
            pipe.delete(f"{key}:token")
        else:
            token = {"token": state.token, "expires_at": state.token_expires_at}
            pipe.set(f"{key}:token", json.dumps(token), px=max(1, int(ttl * 1000)))
        if state.pending:
            pipe.sadd(f"{self._ns}:pending", state.chat_id)
        else:
            pipe.srem(f"{self._ns}:pending", state.chat_id)
        await pipe.execute()

    async def delete(self, chat_id: int) -> None:
        key = self._chat(chat_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(key, f"{key}:token")
        pipe.srem(f"{self._ns}:pending", chat_id)
        await pipe.execute()

    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"{self._chat(chat_id)}:lock"
        return bool(await self._redis.set(key, owner, nx=True, px=int(ttl_s * 1000)))

    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"{self._chat(chat_id)}:lock"
        done = await self._redis.eval(self._RENEW, 1, key, owner, int(ttl_s * 1000))
        return bool(done)

    async def unlock(self, chat_id: int, owner: str) -> None:
        await self._redis.eval(self._UNLOCK, 1, f"{self._chat(chat_id)}:lock", owner)

    async def first_seen(self, update_id: int, ttl_s: float = 86400) -> bool:
        key = f"{self._ns}:update:{update_id}"
        return bool(await self._redis.set(key, 1, nx=True, px=int(ttl_s * 1000)))

    async def chats_with_pending(self) -> list[int]:
        members = await self._redis.smembers(f"{self._ns}:pending")
        ids = []
        for member in members:
            try:
                ids.append(int(member))
            except ValueError:
                log.warning("ignoring a foreign member of the pending set")
        return sorted(ids)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError) as exc:
            log.warning("redis ping failed: %s", type(exc).__name__)
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


class MemoryChatStore:
    """The same contract in process memory: for the embedded default and trials."""

    def __init__(self, idle_ttl_s: float = 30 * 86400) -> None:
        self._idle_s = idle_ttl_s
        self._data: dict[str, tuple[str, float]] = {}

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
        ttl = _token_ttl(state, self._idle_s, time.time())
        if ttl is None or ttl <= 0:
            self._data.pop(f"{key}:token", None)
        else:
            token = {"token": state.token, "expires_at": state.token_expires_at}
            self._set(f"{key}:token", json.dumps(token), ttl)

    async def delete(self, chat_id: int) -> None:
        for suffix in ("", ":token"):
            self._data.pop(f"chat:{chat_id}{suffix}", None)

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

    async def first_seen(self, update_id: int, ttl_s: float = 86400) -> bool:
        key = f"update:{update_id}"
        if self._get(key) is not None:
            return False
        self._set(key, "1", ttl_s)
        return True

    async def chats_with_pending(self) -> list[int]:
        ids = []
        for key in list(self._data):
            if key.startswith("chat:") and not key.endswith(":token"):
                chat_id = int(key.removeprefix("chat:"))
                if (await self.load(chat_id)).pending:
                    ids.append(chat_id)
        return sorted(ids)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._data.clear()
