"""Per-chat state: Redis in production, memory as the embedded default.

Redis layout (every key of one chat shares the hash tag `{<chat id>}`, so a Redis
Cluster keeps them on one slot):

    <ns>:chat:{<id>}         JSON of ChatState without the token; expires when idle
    <ns>:chat:{<id>}:token   JSON {token, expires_at}; expires with the token
    <ns>:chat:{<id>}:lock    owner of the chat's running job; expires on crash
    <ns>:chat:{<id>}:inbox   list of the chat's queued messages (JSON), oldest first
    <ns>:chat:{<id>}:running the queued message being run; left behind by a crash
    <ns>:update:<update id>  set once per Telegram update, for deduplication
    <ns>:pending             set of chat ids with exports in flight
    <ns>:queued              set of chat ids with queued messages

The inbox is shared by every process on one Redis: whichever holds the chat's lock runs
its messages in order, so a message outlives the process that accepted it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.store.base import ChatState, StoreUnavailable, Taken, decode_state, encode_state, token_ttl

__all__ = ["RedisChatStore"]

log = logging.getLogger("bot.store")
P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_on_error(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Redis's connection errors become one typed error the conversation can word."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    return wrapper


class RedisChatStore:
    """Chat state on Redis: one round trip per read and per write."""

    _RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
    _UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501
    # KEYS: inbox; ARGV: item, limit, idle ms. The new length, or 0 when `limit` wait already.
    _ENQUEUE = """
local n = redis.call('llen', KEYS[1])
if n >= tonumber(ARGV[2]) then return 0 end
n = redis.call('rpush', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[3])
return n
"""
    # KEYS: lock, inbox, running; ARGV: owner, lock ms, idle ms. Renews the lock, then
    # returns {held, item, leftover}: the unfinished message first, else the inbox's head.
    _TAKE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return {0} end
redis.call('pexpire', KEYS[1], ARGV[2])
local cur = redis.call('get', KEYS[3])
if cur then return {1, cur, 1} end
local item = redis.call('lpop', KEYS[2])
if not item then return {1} end
redis.call('set', KEYS[3], item, 'PX', ARGV[3])
return {1, item, 0}
"""

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

    @_unavailable_on_error
    async def load(self, chat_id: int) -> ChatState:
        key = self._chat(chat_id)
        raw, token_raw = await self._redis.mget([key, f"{key}:token"])
        return decode_state(chat_id, raw, token_raw)

    @_unavailable_on_error
    async def save(self, state: ChatState) -> None:
        key = self._chat(state.chat_id)
        ttl = token_ttl(state, self._idle_s, time.time())
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

    @_unavailable_on_error
    async def delete(self, chat_id: int) -> None:
        key = self._chat(chat_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(key, f"{key}:token")
        pipe.srem(f"{self._ns}:pending", chat_id)
        await pipe.execute()

    @_unavailable_on_error
    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"{self._chat(chat_id)}:lock"
        return bool(await self._redis.set(key, owner, nx=True, px=int(ttl_s * 1000)))

    @_unavailable_on_error
    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"{self._chat(chat_id)}:lock"
        done = await self._redis.eval(self._RENEW, 1, key, owner, int(ttl_s * 1000))
        return bool(done)

    @_unavailable_on_error
    async def unlock(self, chat_id: int, owner: str) -> None:
        await self._redis.eval(self._UNLOCK, 1, f"{self._chat(chat_id)}:lock", owner)

    @_unavailable_on_error
    async def first_seen(self, update_id: int, ttl_s: float = 86400, scope: str = "update") -> bool:
        """True only the first time; `scope` keeps separate records of one update."""
        key = f"{self._ns}:{scope}:{update_id}"
        return bool(await self._redis.set(key, 1, nx=True, px=int(ttl_s * 1000)))

    @_unavailable_on_error
    async def chats_with_pending(self) -> list[int]:
        return _ids(await self._redis.smembers(f"{self._ns}:pending"))

    @_unavailable_on_error
    async def enqueue(self, chat_id: int, item: str, limit: int) -> int:
        """Append a message to the chat's inbox unless `limit` wait: the new length, or 0."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.eval(self._ENQUEUE, 1, f"{self._chat(chat_id)}:inbox", item, limit, self._idle_ms)
        pipe.sadd(f"{self._ns}:queued", chat_id)
        length, _ = await pipe.execute()
        return int(length)

    @_unavailable_on_error
    async def take_queued(self, chat_id: int, owner: str, ttl_s: float) -> Taken:
        """The next message to run, for the lock's owner only; see `Taken`."""
        key = self._chat(chat_id)
        keys = (f"{key}:lock", f"{key}:inbox", f"{key}:running")
        got = await self._redis.eval(self._TAKE, 3, *keys, owner, int(ttl_s * 1000), self._idle_ms)
        if not got or not int(got[0]):
            return Taken(held=False)
        if len(got) < 3:
            return Taken(held=True)
        item = got[1].decode() if isinstance(got[1], bytes) else str(got[1])
        return Taken(held=True, item=item, leftover=bool(int(got[2])))

    @_unavailable_on_error
    async def finish_queued(self, chat_id: int) -> None:
        """The message taken last is done."""
        await self._redis.delete(f"{self._chat(chat_id)}:running")

    @_unavailable_on_error
    async def queue_length(self, chat_id: int) -> int:
        return int(await self._redis.llen(f"{self._chat(chat_id)}:inbox"))

    @_unavailable_on_error
    async def unindex_if_empty(self, chat_id: int) -> int:
        """Drop the chat from the index of queued chats, unless messages still wait (then it
        stays): how many wait. Removing first, then counting, never hides a new message."""
        key = f"{self._ns}:queued"
        pipe = self._redis.pipeline(transaction=False)
        pipe.srem(key, chat_id)
        pipe.llen(f"{self._chat(chat_id)}:inbox")
        _, length = await pipe.execute()
        if length:
            await self._redis.sadd(key, chat_id)
        return int(length)

    @_unavailable_on_error
    async def chats_with_work(self) -> list[int]:
        """Chats with exports in flight or queued messages, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.smembers(f"{self._ns}:pending")
        pipe.smembers(f"{self._ns}:queued")
        pending, queued = await pipe.execute()
        return sorted(set(_ids(pending)) | set(_ids(queued)))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError) as exc:
            log.warning("redis ping failed: %s", type(exc).__name__)
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def _ids(members: set[Any]) -> list[int]:
    ids = []
    for member in members:
        try:
            ids.append(int(member))
        except ValueError:
            log.warning("ignoring a foreign member of a chat index")
    return sorted(ids)
