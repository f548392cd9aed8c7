"""Per-chat state on Redis: a server of the operator's, a Cluster, or the embedded one.

Redis layout (every key of one chat shares the hash tag `{<chat id>}`, so a Redis
Cluster keeps them on one slot and one script may touch them all):

    <ns>:chat:{<id>}:fields     hash: client_id, session_id, task_id, lang, lang_locked,
                                last_video
    <ns>:chat:{<id>}:token      JSON {token, expires_at}; expires with the token
    <ns>:chat:{<id>}:draft      JSON of the project's last known draft
    <ns>:chat:{<id>}:pending    hash: render id → JSON of the export in flight
    <ns>:chat:{<id>}:lock       owner of the chat's running job; expires on crash
    <ns>:chat:{<id>}:inbox      list of the chat's queued messages (JSON), oldest first
    <ns>:chat:{<id>}:running    the queued message being run; left behind by a crash
    <ns>:chat:{<id>}:sent       set once the running message may have reached the backend
    <ns>:chat:{<id>}:seen:<u>   set once per queued Telegram update, with the message
    <ns>:update:<update id>     set once per update answered at once, for deduplication
    <ns>:pending                set of chat ids with exports in flight
    <ns>:queued                 set of chat ids with queued messages

Each write changes one part and refreshes the idle expiry of the chat's keys; none reads
the whole state to write it back, so no write undoes another's. The inbox is shared by
every process on one Redis: whichever holds the chat's lock runs its messages in order,
so a message outlives the process that accepted it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from bot.store.base import (
    SEEN_TTL_S,
    ChatState,
    Enqueued,
    Lease,
    PendingExport,
    StoreUnavailable,
    Taken,
    decode_legacy,
    decode_state,
    encode_draft,
    encode_pending,
    encode_token,
    encode_video,
    token_ttl,
)

__all__ = ["RedisChatStore"]

log = logging.getLogger("bot.store")
P = ParamSpec("P")
R = TypeVar("R")

# Refreshes the idle expiry of a chat's state keys (KEYS[1..3]: hash, draft, pending;
# ARGV[1]: idle ms). Scripts that write a part of the state end with it.
_TOUCH = """
for i = 1, 3 do redis.call('pexpire', KEYS[i], ARGV[1]) end
"""


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
    """Chat state on Redis (one server or a Cluster): one round trip per read and write."""

    _RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
    _UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501
    # KEYS: hash, draft, pending; ARGV: idle ms, client id. The chat's client id, kept if set.
    _CLAIM_CLIENT = (
        _TOUCH
        + """
redis.call('hsetnx', KEYS[1], 'client_id', ARGV[2])
return redis.call('hget', KEYS[1], 'client_id')
"""
    )
    # KEYS: hash, draft, pending; ARGV: idle ms, lang, locked ('1', '0', or '' to set the
    # language only when the user has not chosen one).
    _SET_LANG = (
        """
if ARGV[3] == '' then
  if redis.call('hget', KEYS[1], 'lang_locked') == '1' then return 0 end
  redis.call('hset', KEYS[1], 'lang', ARGV[2])
else
  redis.call('hset', KEYS[1], 'lang', ARGV[2], 'lang_locked', ARGV[3])
end
"""
        + _TOUCH
        + "return 1"
    )
    # KEYS: hash, draft, pending; ARGV: idle ms, then field/value pairs. A new session
    # starts with no draft.
    _SET_SESSION = (
        """
redis.call('hset', KEYS[1], unpack(ARGV, 2))
redis.call('del', KEYS[2])
"""
        + _TOUCH
        + "return 1"
    )
    # KEYS: hash, draft, pending, token; ARGV: idle ms, token JSON, token ms, client id.
    _SET_TOKEN = (
        """
if tonumber(ARGV[3]) > 0 then
  redis.call('set', KEYS[4], ARGV[2], 'PX', ARGV[3])
else
  redis.call('del', KEYS[4])
end
if ARGV[4] ~= '' then redis.call('hset', KEYS[1], 'client_id', ARGV[4]) end
"""
        + _TOUCH
        + "return 1"
    )
    # KEYS: legacy value, hash, draft, pending; ARGV: idle ms, the legacy value as read,
    # draft JSON ('' for none), n, then n field/value pairs, then render id/JSON pairs.
    _MIGRATE = """
if redis.call('get', KEYS[1]) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then redis.call('set', KEYS[3], ARGV[3], 'NX') end
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do redis.call('hsetnx', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 5 + 2 * n, #ARGV, 2 do redis.call('hsetnx', KEYS[4], ARGV[i], ARGV[i + 1]) end
redis.call('del', KEYS[1])
for i = 2, 4 do redis.call('pexpire', KEYS[i], ARGV[1]) end
return 1
"""
    # KEYS: inbox, seen marker (optional); ARGV: item, limit, idle ms, seen ms. The new
    # length, 0 when `limit` wait already, -1 for an update queued before.
    _ENQUEUE = """
if KEYS[2] and not redis.call('set', KEYS[2], 1, 'NX', 'PX', ARGV[4]) then return -1 end
local n = redis.call('llen', KEYS[1])
if n >= tonumber(ARGV[2]) then return 0 end
n = redis.call('rpush', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[3])
return n
"""
    # KEYS: lock, inbox, running, sent; ARGV: owner, lock ms, idle ms. Renews the lock,
    # then returns {held, item, leftover, sent}: the unfinished message first, else the
    # inbox's head.
    _TAKE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return {0} end
redis.call('pexpire', KEYS[1], ARGV[2])
local cur = redis.call('get', KEYS[3])
if cur then return {1, cur, 1, redis.call('exists', KEYS[4])} end
local item = redis.call('lpop', KEYS[2])
if not item then return {1} end
redis.call('set', KEYS[3], item, 'PX', ARGV[3])
redis.call('del', KEYS[4])
return {1, item, 0, 0}
"""
    # KEYS: lock, sent; ARGV: owner, idle ms. Only the lock's owner may mark.
    _MARK_SENT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], 1, 'PX', ARGV[2])
return 1
"""
    # KEYS: lock, running, sent; ARGV: owner.
    _FINISH = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[2], KEYS[3])
return 1
"""

    # KEYS: the bot's send window; ARGV: most in a window, slots wanted, window ms, a
    # prefix unique to this call. Server time, so replicas' clocks do not matter. Returns
    # the slots granted and, when none, ms until the window's oldest slot ages out.
    _TAKE_SENDS = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
redis.call('zremrangebyscore', KEYS[1], '-inf', now - window)
local free = tonumber(ARGV[1]) - redis.call('zcard', KEYS[1])
local take = math.min(tonumber(ARGV[2]), free)
if take > 0 then
  for i = 1, take do redis.call('zadd', KEYS[1], now, ARGV[4] .. i) end
  redis.call('pexpire', KEYS[1], window * 2)
  return {take, 0}
end
local oldest = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        namespace: str = "nemobot",
        idle_ttl_s: float = 30 * 86400,
    ):
        self._redis = redis
        self._ns = namespace
        self._idle_ms = int(idle_ttl_s * 1000)
        self._idle_s = idle_ttl_s
        # Sent by SHA (EVALSHA); a server that lost them (restart, failover, SCRIPT FLUSH)
        # is sent the script again.
        script = redis.register_script
        self._renew, self._unlock = script(self._RENEW), script(self._UNLOCK)
        self._claim_client, self._set_lang = script(self._CLAIM_CLIENT), script(self._SET_LANG)
        self._set_session, self._set_token = script(self._SET_SESSION), script(self._SET_TOKEN)
        self._migrate_script, self._enqueue = script(self._MIGRATE), script(self._ENQUEUE)
        self._take, self._mark_sent = script(self._TAKE), script(self._MARK_SENT)
        self._finish = script(self._FINISH)
        self._take_sends = script(self._TAKE_SENDS)
        self._sender = uuid.uuid4().hex  # names this store's send slots among all others'
        self._calls = itertools.count()

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

    def _state_keys(self, chat_id: int) -> tuple[str, str, str]:
        key = self._chat(chat_id)
        return f"{key}:fields", f"{key}:draft", f"{key}:pending"

    @_unavailable_on_error
    async def load(self, chat_id: int) -> ChatState:
        key, draft, pending = self._state_keys(chat_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.get(f"{self._chat(chat_id)}:token")
        pipe.get(draft)
        pipe.hvals(pending)
        pipe.get(self._chat(chat_id))
        fields, token_raw, draft_raw, pending_raw, legacy = await pipe.execute()
        if legacy is not None:
            await self._migrate(chat_id, legacy)
            return await self.load(chat_id)
        text = {_text(k): _text(v) for k, v in fields.items()}
        return decode_state(chat_id, text, token_raw, draft_raw, pending_raw)

    async def _migrate(self, chat_id: int, raw: bytes) -> None:
        """A chat stored whole by an earlier version (one JSON value under the chat's key)
        is split into its parts once; parts written since are kept."""
        old = decode_legacy(chat_id, raw)
        pairs = [
            (name, value)
            for name, value in (
                ("client_id", old.client_id),
                ("session_id", old.session_id),
                ("task_id", old.task_id),
                ("lang", old.lang),
                ("lang_locked", "1" if old.lang_locked else None),
            )
            if value is not None
        ]
        pending = [(p.render_id, encode_pending(p)) for p in old.pending]
        draft = encode_draft(old.last_draft) if old.last_draft is not None else ""
        keys = (self._chat(chat_id), *self._state_keys(chat_id))
        args = [self._idle_ms, raw, draft, len(pairs), *sum(pairs, ()), *sum(pending, ())]
        await self._migrate_script(keys, args)
        if old.pending:
            await self._redis.sadd(f"{self._ns}:pending", chat_id)

    @_unavailable_on_error
    async def claim_client_id(self, chat_id: int, client_id: str) -> str:
        """The chat's client id: `client_id` unless the chat has one already."""
        keys = self._state_keys(chat_id)
        return _text(await self._claim_client(keys, [self._idle_ms, client_id]))

    @_unavailable_on_error
    async def set_token(
        self, chat_id: int, token: str, expires_at: float | None, client_id: str | None
    ) -> None:
        keys = (*self._state_keys(chat_id), f"{self._chat(chat_id)}:token")
        ttl_ms = int(token_ttl(expires_at, self._idle_s, time.time()) * 1000)
        value = encode_token(token, expires_at)
        await self._set_token(keys, [self._idle_ms, value, ttl_ms, client_id or ""])

    @_unavailable_on_error
    async def set_session(
        self, chat_id: int, session_id: str, task_id: str | None, lang: str | None = None
    ) -> None:
        """A new session (and project): its ids, the language it was made in, no draft."""
        pairs: list[str] = ["session_id", session_id, "task_id", task_id or ""]
        if lang is not None:
            pairs += ["lang", lang]
        keys = self._state_keys(chat_id)
        await self._set_session(keys, [self._idle_ms, *pairs])

    @_unavailable_on_error
    async def set_lang(self, chat_id: int, lang: str, locked: bool | None) -> None:
        """`locked` None: the detected language, kept only if the user chose none."""
        flag = "" if locked is None else ("1" if locked else "0")
        await self._set_lang(self._state_keys(chat_id), [self._idle_ms, lang, flag])

    @_unavailable_on_error
    async def set_draft(self, chat_id: int, draft: Mapping[str, Any] | None) -> None:
        _, key, _ = self._state_keys(chat_id)
        if draft is None:
            await self._redis.delete(key)
        else:
            await self._redis.set(key, encode_draft(draft), px=self._idle_ms)

    @_unavailable_on_error
    async def set_last_video(self, chat_id: int, video: Mapping[str, str]) -> None:
        key, _, _ = self._state_keys(chat_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(key, "last_video", encode_video(video))
        pipe.pexpire(key, self._idle_ms)
        await pipe.execute()

    @_unavailable_on_error
    async def add_pending(self, chat_id: int, pending: PendingExport) -> None:
        """Record an export in flight; indexed first, so a crash never hides one."""
        _, _, key = self._state_keys(chat_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(f"{self._ns}:pending", chat_id)
        pipe.hset(key, pending.render_id, encode_pending(pending))
        pipe.pexpire(key, self._idle_ms)
        await pipe.execute()

    @_unavailable_on_error
    async def claim_pending(self, chat_id: int, render_id: str) -> bool:
        """Remove an export in flight; True for the one caller that removed it, which alone
        may tell its outcome (deliver the video, or say it failed or stopped)."""
        _, _, key = self._state_keys(chat_id)
        claimed = bool(await self._redis.hdel(key, render_id))
        if claimed and not await self._redis.hlen(key):
            index = f"{self._ns}:pending"
            await self._redis.srem(index, chat_id)
            if await self._redis.hlen(key):  # added meanwhile: stays indexed
                await self._redis.sadd(index, chat_id)
        return claimed

    @_unavailable_on_error
    async def delete(self, chat_id: int) -> None:
        key, draft, pending = self._state_keys(chat_id)
        chat = self._chat(chat_id)
        await self._redis.delete(chat, f"{chat}:token", key, draft, pending)
        await self._redis.srem(f"{self._ns}:pending", chat_id)

    @_unavailable_on_error
    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"{self._chat(chat_id)}:lock"
        return bool(await self._redis.set(key, owner, nx=True, px=int(ttl_s * 1000)))

    @_unavailable_on_error
    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool:
        key = f"{self._chat(chat_id)}:lock"
        return bool(await self._renew((key,), [owner, int(ttl_s * 1000)]))

    @_unavailable_on_error
    async def lock_holder(self, chat_id: int) -> str | None:
        """Who holds the chat's lock, read without touching it."""
        holder = await self._redis.get(f"{self._chat(chat_id)}:lock")
        return None if holder is None else _text(holder)

    @_unavailable_on_error
    async def unlock(self, chat_id: int, owner: str) -> None:
        await self._unlock((f"{self._chat(chat_id)}:lock",), [owner])

    @_unavailable_on_error
    async def first_seen(self, update_id: int, ttl_s: float = 86400, scope: str = "update") -> bool:
        """True only the first time; `scope` keeps separate records of one update."""
        key = f"{self._ns}:{scope}:{update_id}"
        return bool(await self._redis.set(key, 1, nx=True, px=int(ttl_s * 1000)))

    @_unavailable_on_error
    async def take_sends(self, want: int, per_window: int, window_s: float) -> Lease:
        """Up to `want` of the `per_window` sends the bot may make in any `window_s`, counted
        across every process sharing the store (the namespace names the bot)."""
        key = f"{self._ns}:sends"
        prefix = f"{self._sender}:{next(self._calls)}:"
        window_ms = max(1, round(window_s * 1000))
        granted, wait_ms = await self._take_sends((key,), (per_window, want, window_ms, prefix))
        return Lease(int(granted), max(0.0, int(wait_ms) / 1000))

    @_unavailable_on_error
    async def enqueue(
        self, chat_id: int, item: str, limit: int, update_id: int | None = None
    ) -> Enqueued:
        """Append a message to the chat's inbox unless `limit` wait, in one step with the
        record that its update was seen: a crash leaves both written or neither."""
        key = self._chat(chat_id)
        keys: tuple[str, ...] = (f"{key}:inbox",)
        if update_id is not None:
            keys += (f"{key}:seen:{update_id}",)
        args = (item, limit, self._idle_ms, int(SEEN_TTL_S * 1000))
        index = f"{self._ns}:queued"
        if isinstance(self._redis, RedisCluster):
            # A cluster pipeline refuses EVALSHA, and the two keys are on two nodes anyway.
            await self._redis.sadd(index, chat_id)  # first: a stored message is always indexed
            length = await self._enqueue(keys, args)
        else:
            try:
                length = await self._enqueue_pipelined(index, chat_id, keys, args)
            except NoScriptError:  # nothing of the script ran: load it and go again
                await self._redis.script_load(self._ENQUEUE)
                length = await self._enqueue_pipelined(index, chat_id, keys, args)
        if int(length) < 0:
            return Enqueued(duplicate=True)
        return Enqueued(length=int(length))

    async def _enqueue_pipelined(
        self, index: str, chat_id: int, keys: tuple[str, ...], args: tuple[Any, ...]
    ) -> Any:
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(index, chat_id)  # first: a stored message is always indexed
        pipe.evalsha(self._enqueue.sha, len(keys), *keys, *args)
        _, length = await pipe.execute()
        return length

    @_unavailable_on_error
    async def take_queued(self, chat_id: int, owner: str, ttl_s: float) -> Taken:
        """The next message to run, for the lock's owner only; see `Taken`."""
        key = self._chat(chat_id)
        keys = (f"{key}:lock", f"{key}:inbox", f"{key}:running", f"{key}:sent")
        got = await self._take(keys, [owner, int(ttl_s * 1000), self._idle_ms])
        if not got or not int(got[0]):
            return Taken(held=False)
        if len(got) < 4:
            return Taken(held=True)
        return Taken(
            held=True, item=_text(got[1]), leftover=bool(int(got[2])), sent=bool(int(got[3]))
        )

    @_unavailable_on_error
    async def mark_sent(self, chat_id: int, owner: str) -> bool:
        """Record that the running message may reach the backend now; False (and nothing
        recorded) when the lock is no longer `owner`'s."""
        key = self._chat(chat_id)
        keys = (f"{key}:lock", f"{key}:sent")
        return bool(await self._mark_sent(keys, [owner, self._idle_ms]))

    @_unavailable_on_error
    async def finish_queued(self, chat_id: int, owner: str) -> bool:
        """The message taken last is done; False when the lock is no longer `owner`'s (the
        message then stays for the holder)."""
        key = self._chat(chat_id)
        keys = (f"{key}:lock", f"{key}:running", f"{key}:sent")
        return bool(await self._finish(keys, [owner]))

    @_unavailable_on_error
    async def queue_length(self, chat_id: int) -> int:
        return int(await self._redis.llen(f"{self._chat(chat_id)}:inbox"))

    @_unavailable_on_error
    async def unindex_if_empty(self, chat_id: int) -> int:
        """Drop the chat from the index of queued chats, unless messages still wait (then it
        stays): how many wait. Removing first, then counting, never hides a new message."""
        key = f"{self._ns}:queued"
        await self._redis.srem(key, chat_id)
        length = int(await self._redis.llen(f"{self._chat(chat_id)}:inbox"))
        if length:
            await self._redis.sadd(key, chat_id)
        return length

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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ids(members: set[Any]) -> list[int]:
    ids = []
    for member in members:
        try:
            ids.append(int(member))
        except ValueError:
            log.warning("ignoring a foreign member of a chat index")
    return sorted(ids)
