"""The chat store contract, run against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.app import build_store
from bot.settings import load_settings
from bot.store import (
    ChatState,
    ChatStore,
    Enqueued,
    PendingExport,
    RedisChatStore,
    StoreUnavailable,
    Taken,
)
from bot.store.embedded import EmbeddedRedis
from tests.redis_server import ClusterProcesses


def full_state(chat_id: int = 42) -> ChatState:
    return ChatState(
        chat_id=chat_id,
        token="nmv_usr_example0token",
        token_expires_at=time.time() + 3600,
        client_id="c-1",
        session_id="5529798706024415232",
        task_id="task_1",
        lang="zh",
        lang_locked=True,
        pending=[
            PendingExport(
                render_id="render_1",
                started_at=1.5,
                lang="zh",
                progress_ref="p",
                draft_key="k1",
                rounds=2,
            )
        ],
        last_draft={"t": [{"tt": 0, "sg": [{"d": 5000}]}]},
        last_video={"url": "https://cdn.example/v.mp4", "draft": "k0"},
    )


async def put(store: ChatStore, state: ChatState) -> None:
    """Write every part of `state`, one part at a time, as the conversation does."""
    chat = state.chat_id
    if state.client_id:
        assert await store.claim_client_id(chat, state.client_id) == state.client_id
    if state.token:
        await store.set_token(chat, state.token, state.token_expires_at, None)
    if state.session_id:
        await store.set_session(chat, state.session_id, state.task_id)
    if state.lang:
        await store.set_lang(chat, state.lang, state.lang_locked)
    await store.set_draft(chat, state.last_draft)
    for pending in state.pending:
        await store.add_pending(chat, pending)
    if state.last_video:
        await store.set_last_video(chat, state.last_video)


async def test_missing_chat_loads_fresh(store: ChatStore) -> None:
    assert await store.load(7) == ChatState(chat_id=7)


async def test_round_trip_keeps_every_field(store: ChatStore) -> None:
    state = full_state()
    await put(store, state)
    assert await store.load(42) == state


async def test_chats_are_isolated(store: ChatStore) -> None:
    await put(store, full_state(1))
    other = await store.load(2)
    assert other.token is None and other.session_id is None


async def test_delete_forgets_chat(store: ChatStore) -> None:
    await put(store, full_state())
    await store.delete(42)
    assert await store.load(42) == ChatState(chat_id=42)
    assert await store.chats_with_work() == []


async def test_expired_token_is_dropped_but_chat_kept(store: ChatStore) -> None:
    state = full_state()
    state.token_expires_at = time.time() + 0.2
    await put(store, state)
    assert (await store.load(42)).token == state.token
    await asyncio.sleep(0.35)
    loaded = await store.load(42)
    assert loaded.token is None
    assert loaded.session_id == state.session_id


async def test_idle_chat_expires(redis_client: Redis, namespace: str) -> None:
    store = RedisChatStore(redis_client, namespace, 0.2)
    await put(store, full_state())
    assert (await store.load(42)).session_id is not None
    await asyncio.sleep(0.35)
    assert await store.load(42) == ChatState(chat_id=42)


async def test_pending_index_follows_state(store: ChatStore) -> None:
    await put(store, full_state(1))
    await put(store, ChatState(chat_id=2, session_id="s"))
    await put(store, full_state(3))
    assert await store.chats_with_work() == [1, 3]
    assert await store.claim_pending(3, "render_1")
    assert await store.chats_with_work() == [1]
    assert (await store.load(3)).session_id == "5529798706024415232", "the rest is kept"


async def test_lock_excludes_other_owner_until_unlocked(store: ChatStore) -> None:
    assert await store.try_lock(5, "a", 10)
    assert not await store.try_lock(5, "b", 10)
    await store.unlock(5, "b")  # not the owner: no effect
    assert not await store.try_lock(5, "b", 10)
    await store.unlock(5, "a")
    assert await store.try_lock(5, "b", 10)


async def test_lock_expires_unless_renewed(store: ChatStore) -> None:
    assert await store.try_lock(5, "a", 0.3)
    await asyncio.sleep(0.2)
    assert await store.renew_lock(5, "a", 0.3)
    assert not await store.renew_lock(5, "b", 0.3)
    await asyncio.sleep(0.2)
    assert not await store.try_lock(5, "b", 0.3)  # renewed, so still held
    await asyncio.sleep(0.25)
    assert await store.try_lock(5, "b", 0.3)  # a crashed owner's lock lapses
    assert not await store.renew_lock(5, "a", 0.3)


async def test_lock_contention_between_two_clients(redis_url: str, namespace: str) -> None:
    first = RedisChatStore.from_url(redis_url, namespace)
    second = RedisChatStore.from_url(redis_url, namespace)
    try:
        results = await asyncio.gather(
            *(s.try_lock(9, f"owner-{i}", 5) for i, s in enumerate([first, second] * 10))
        )
        assert results.count(True) == 1
    finally:
        await first.unlock(9, f"owner-{results.index(True)}")
        await first.aclose()
        await second.aclose()


async def test_update_seen_once(store: ChatStore) -> None:
    assert await store.first_seen(1001)
    assert not await store.first_seen(1001)
    assert await store.first_seen(1002)


async def test_update_dedupe_expires(store: ChatStore) -> None:
    assert await store.first_seen(77, ttl_s=0.2)
    await asyncio.sleep(0.3)
    assert await store.first_seen(77, ttl_s=0.2)


async def test_corrupted_values_are_treated_as_absent(
    redis_client: Redis, redis_store: RedisChatStore, namespace: str
) -> None:
    key = f"{namespace}:chat:{{42}}"
    await redis_client.hset(f"{key}:fields", "session_id", "s-1")
    await redis_client.set(f"{key}:draft", b"\xff not json")
    await redis_client.set(f"{key}:token", '["foreign"]')
    await redis_client.hset(f"{key}:pending", mapping={"r1": "[1]", "r2": "{}"})
    assert await redis_store.load(42) == ChatState(chat_id=42, session_id="s-1")
    await redis_client.sadd(f"{namespace}:pending", "not-a-chat", 3)
    assert await redis_store.chats_with_work() == [3]


async def test_one_round_trip_per_read_and_write(tmp_path: Path) -> None:
    # A server of its own: the shared one counts other clients' commands too.
    server = EmbeddedRedis(tmp_path)
    client = Redis.from_url(server.start())
    try:
        store = RedisChatStore(client, "nemobot")
        await put(store, full_state())
        before = int((await client.info("stats"))["total_commands_processed"])
        await store.set_draft(42, {"t": []})
        await store.load(42)
        after = int((await client.info("stats"))["total_commands_processed"])
        # set_draft: one SET; load: HGETALL + GET token + GET draft + HVALS + GET (a chat
        # stored whole by an earlier version) in one pipeline; + the INFO itself
        assert after - before <= 7
    finally:
        await client.aclose()
        server.stop()


async def test_scripts_are_sent_by_their_sha(tmp_path: Path) -> None:
    """Each Lua script crosses the wire once; later calls name it by its SHA."""
    server = EmbeddedRedis(tmp_path)
    client = Redis.from_url(server.start())
    try:
        store = RedisChatStore(client, "nemobot")
        for round_ in range(3):
            await store.set_lang(1, "zh", None)
            await store.enqueue(1, f"m{round_}", limit=10, update_id=round_)
            assert await store.try_lock(1, "me", 5) or round_ > 0
            assert (await store.take_queued(1, "me", 5)).item == f"m{round_}"
            assert await store.finish_queued(1, "me")
        stats = await client.info("commandstats")
        assert "cmdstat_eval" not in stats, "a script was sent in full"
        assert int(stats["cmdstat_evalsha"]["calls"]) >= 12
    finally:
        await client.aclose()
        server.stop()


async def test_scripts_the_server_lost_are_sent_again(store: RedisChatStore) -> None:
    """A restart, a failover or SCRIPT FLUSH empties the server's script cache: every
    scripted write still works, the pipelined enqueue included, and runs once."""
    assert (await store.enqueue(5, "before", limit=5, update_id=50)).length == 1
    await store.set_lang(5, "en", True)
    await store._redis.script_flush()
    assert (await store.enqueue(5, "after", limit=5, update_id=51)).length == 2
    assert (await store.enqueue(5, "after", limit=5, update_id=51)).duplicate
    await store._redis.script_flush()
    await store.set_lang(5, "zh", True)
    assert await store.try_lock(5, "me", 5)
    await store._redis.script_flush()
    assert (await store.take_queued(5, "me", 5)).item == "before"
    await store._redis.script_flush()
    assert await store.finish_queued(5, "me")
    assert (await store.take_queued(5, "me", 5)).item == "after"
    assert (await store.load(5)).lang == "zh"
    assert await store.queue_length(5) == 0


async def test_token_never_in_repr() -> None:
    assert "nmv_usr_example0token" not in repr(full_state())


async def test_ping(store: ChatStore) -> None:
    assert await store.ping()


async def test_unreachable_redis_is_one_typed_error() -> None:
    store = RedisChatStore.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(StoreUnavailable):
            await store.load(1)
        with pytest.raises(StoreUnavailable):
            await put(store, full_state())
        with pytest.raises(StoreUnavailable):
            await store.try_lock(1, "a", 1)
    finally:
        await store.aclose()


async def test_ping_reports_unreachable_redis() -> None:
    store = RedisChatStore.from_url("redis://127.0.0.1:1/0")
    assert not await store.ping()
    await store.aclose()


async def test_inbox_keeps_order_for_the_lock_holder_only(store: ChatStore) -> None:
    assert (await store.enqueue(8, "one", limit=3)).length == 1
    assert (await store.enqueue(8, "two", limit=3)).length == 2
    assert await store.chats_with_work() == [8]
    assert await store.take_queued(8, "a", 5) == Taken(held=False), "no lock, nothing taken"
    assert await store.try_lock(8, "a", 5)
    assert await store.take_queued(8, "b", 5) == Taken(held=False)
    assert await store.take_queued(8, "a", 5) == Taken(held=True, item="one")
    assert await store.finish_queued(8, "a")
    assert await store.queue_length(8) == 1
    assert await store.take_queued(8, "a", 5) == Taken(held=True, item="two")
    assert await store.finish_queued(8, "a")
    assert await store.take_queued(8, "a", 5) == Taken(held=True)
    assert await store.unindex_if_empty(8) == 0
    assert await store.chats_with_work() == []


async def test_inbox_refuses_past_its_limit(store: ChatStore) -> None:
    assert [(await store.enqueue(3, f"m{i}", limit=2)).length for i in range(3)] == [1, 2, 0]
    assert await store.queue_length(3) == 2


async def test_unfinished_message_is_handed_to_the_next_holder(store: ChatStore) -> None:
    await store.enqueue(4, "export", limit=5)
    await store.enqueue(4, "after", limit=5)
    assert await store.try_lock(4, "dies", 0.2)
    assert (await store.take_queued(4, "dies", 0.2)).item == "export"
    await asyncio.sleep(0.3)  # the holder crashed: its lock lapses, the message stays
    assert await store.try_lock(4, "lives", 5)
    assert await store.take_queued(4, "lives", 5) == Taken(held=True, item="export", leftover=True)
    assert not await store.finish_queued(4, "dies"), "only the holder finishes"
    assert await store.finish_queued(4, "lives")
    assert await store.take_queued(4, "lives", 5) == Taken(held=True, item="after")


async def test_unindex_keeps_a_chat_whose_inbox_is_not_empty(store: ChatStore) -> None:
    await store.enqueue(6, "late", limit=5)
    assert await store.unindex_if_empty(6) == 1
    assert await store.chats_with_work() == [6]


async def test_work_index_joins_pending_exports_and_queued_messages(store: ChatStore) -> None:
    await put(store, full_state(1))
    await store.enqueue(2, "hi", limit=5)
    assert await store.chats_with_work() == [1, 2]


async def test_scopes_dedupe_separately(store: ChatStore) -> None:
    assert await store.first_seen(55, scope="refusal")
    assert await store.first_seen(55)
    assert not await store.first_seen(55, scope="refusal")
    assert not await store.first_seen(55)


async def test_inbox_keys_share_the_chats_hash_tag(
    redis_client: Redis, redis_store: RedisChatStore, namespace: str
) -> None:
    await redis_store.enqueue(12, "x", limit=5)
    assert await redis_store.try_lock(12, "a", 5)
    await redis_store.take_queued(12, "a", 5)
    keys = sorted([k.decode() async for k in redis_client.scan_iter(match=f"{namespace}:chat:*")])
    assert keys == [f"{namespace}:chat:{{12}}:lock", f"{namespace}:chat:{{12}}:running"]


async def test_an_update_is_queued_once(store: ChatStore) -> None:
    assert await store.enqueue(5, "a", limit=3, update_id=700) == Enqueued(length=1)
    assert await store.enqueue(5, "a again", limit=3, update_id=700) == Enqueued(duplicate=True)
    assert await store.enqueue(5, "b", limit=3, update_id=701) == Enqueued(length=2)
    assert await store.enqueue(5, "no id", limit=3) == Enqueued(length=3)
    assert await store.queue_length(5) == 3


async def test_writes_to_different_parts_never_undo_each_other(
    redis_url: str, namespace: str
) -> None:
    """Two clients (two replicas) write a chat's parts at once: every write stays."""
    first = RedisChatStore.from_url(redis_url, namespace)
    second = RedisChatStore.from_url(redis_url, namespace)
    try:
        for round_ in range(20):
            render = PendingExport(render_id=f"r{round_}", started_at=float(round_))
            await asyncio.gather(
                first.add_pending(3, render),
                second.set_lang(3, "zh", True),
                second.set_draft(3, {"round": round_}),
                first.set_token(3, f"tok{round_}", None, "client"),
            )
        state = await first.load(3)
        assert [p.render_id for p in state.pending] == [f"r{i}" for i in range(20)]
        assert (state.lang, state.last_draft, state.token) == ("zh", {"round": 19}, "tok19")
    finally:
        await first.delete(3)
        await first.aclose()
        await second.aclose()


async def test_a_cluster_url_gives_a_store_spread_over_the_cluster(
    redis_cluster: ClusterProcesses, namespace: str
) -> None:
    """REDIS_URL=redis+cluster://… : the bot's store on a real three-master cluster, each
    chat's keys on one slot and the chats spread over the masters."""
    settings = load_settings(redis_url=redis_cluster.url, redis_namespace=namespace)
    store = build_store(settings)
    try:
        states = [full_state(chat) for chat in range(1, 31)]
        for state in states:
            await put(store, state)
            chat = state.chat_id
            assert (await store.enqueue(chat, "hi", limit=5, update_id=chat)).length == 1
        assert await store.chats_with_work() == list(range(1, 31))
        assert await store.load(17) == states[16]
        holders = set()
        for node in redis_cluster.nodes:
            plain = Redis.from_url(node.url)
            keys = [k.decode() async for k in plain.scan_iter(match=f"{namespace}:chat:*")]
            await plain.aclose()
            tags = {k.split("{", 1)[1].split("}", 1)[0] for k in keys}
            holders |= {(tag, node.port) for tag in tags}
        ports_of = {tag: {p for t, p in holders if t == tag} for tag, _ in holders}
        assert all(len(ports) == 1 for ports in ports_of.values()), "one node per chat"
        assert len({p for _, p in holders}) == 3, "chats on every master"
    finally:
        for chat in range(1, 31):
            await store.delete(chat)
        await store.aclose()


async def test_a_chat_stored_whole_by_an_earlier_version_is_split_and_kept(
    redis_client: Redis, redis_store: RedisChatStore, namespace: str
) -> None:
    """Upgrading keeps every chat: the one JSON value of the earlier layout is read once,
    split into parts, and removed; a part written since wins."""
    key = f"{namespace}:chat:{{42}}"
    legacy = {
        "chat_id": 42,
        "client_id": "c-1",
        "session_id": "s-old",
        "task_id": "task_1",
        "lang": "zh",
        "lang_locked": True,
        "pending": [{"render_id": "r1", "started_at": 1.5, "lang": "zh", "progress_ref": "p"}],
        "last_draft": {"t": [{"tt": 0, "sg": [{"d": 5000}]}]},
    }
    await redis_client.set(key, json.dumps(legacy))
    await redis_client.sadd(f"{namespace}:pending", 42)
    await redis_client.hset(f"{key}:fields", "session_id", "s-new")  # written since
    state = await redis_store.load(42)
    assert state == ChatState(
        chat_id=42,
        client_id="c-1",
        session_id="s-new",
        task_id="task_1",
        lang="zh",
        lang_locked=True,
        pending=[PendingExport(render_id="r1", started_at=1.5, lang="zh", progress_ref="p")],
        last_draft={"t": [{"tt": 0, "sg": [{"d": 5000}]}]},
    )
    assert not await redis_client.exists(key), "read once"
    assert await redis_store.chats_with_work() == [42]
    assert await redis_store.claim_pending(42, "r1")
    assert (await redis_store.load(42)).pending == []


async def test_send_slots_are_counted_in_one_window_for_every_process(
    store: ChatStore,
) -> None:
    first = await store.take_sends(4, 6, 0.5)
    second = await store.take_sends(4, 6, 0.5)  # another process, the same bot
    assert (first.granted, second.granted) == (4, 2)
    full = await store.take_sends(1, 6, 0.5)
    assert full.granted == 0 and 0 < full.wait_s <= 0.5
    await asyncio.sleep(full.wait_s + 0.01)
    assert (await store.take_sends(6, 6, 0.5)).granted == 6
