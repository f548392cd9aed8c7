"""Three `nemobot run --webhook` processes on one Redis, behind a round-robin balancer.

Several chats send numbered edits and /status while the replica following one chat's
export, with that chat's edits queued behind it, is killed (SIGKILL) mid-render. Every
message gets exactly one answer, each chat's edits are answered in the order sent, and a
living replica delivers the export.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis, RedisCluster

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi, TgUser
from tests.replica_fixtures import Replica, balanced, sim_config, title_answer
from tests.waiting import until

EDITS = 4  # per chat: two before the kill, two after


@dataclass
class Cluster:
    api: FakeBotApi
    sim: Simulator
    redis: Redis | RedisCluster
    prefix: str  # the store's namespace: REDIS_NAMESPACE and the bot's id
    replicas: list[Replica] = field(default_factory=list)

    def key(self, chat_id: int, suffix: str) -> str:
        return f"{self.prefix}:chat:{{{chat_id}}}:{suffix}"

    async def queued_updates(self, chat_id: int) -> str:
        """The chat's inbox and the message being run, as stored."""
        items = await self.redis.lrange(self.key(chat_id, "inbox"), 0, -1)
        running = await self.redis.get(self.key(chat_id, "running"))
        return " ".join(x.decode() for x in [*items, *([running] if running else [])])


@pytest.fixture(params=["redis", "redis-cluster"])
async def cluster(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Cluster]:
    """Three replicas on one Redis, or on a real three-master Redis Cluster."""
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    redis: Redis | RedisCluster
    if request.param == "redis-cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
        redis = RedisCluster.from_url(redis_url.replace("+cluster", "", 1))
    else:
        redis = Redis.from_url(redis_url)
    async with FakeBotApi(webhook_retry_s=0.05) as api, Simulator(sim_config()) as sim:
        try:
            async with balanced(api, sim, [redis_url] * 3, ns) as replicas:
                yield Cluster(api, sim, redis, f"{ns}:{api.bot_id}", replicas)
        finally:
            keys = [k async for k in redis.scan_iter(match=f"{ns}:*", count=500)]
            for key in keys:
                await redis.delete(key)
            await redis.aclose()


async def send_and_wait_accepted(cluster: Cluster, user: TgUser, text: str) -> None:
    """A user's pace: the next message once this one is queued, or answered.

    A webhook call is acknowledged before its update is handled, so two messages of one
    chat reaching two replicas at once could be queued either way round; a user waiting
    for the bot to take each message keeps the order the test asserts."""
    api = cluster.api

    def statuses() -> int:
        return len([t for t in api.texts(user.id) if t.startswith("📋")])

    before = statuses()
    update = api.send_text(user, text)
    needle = f'"update_id":{update["update_id"]}'

    async def accepted() -> bool:
        if text == "/status":
            return statuses() > before
        number = int(text.rsplit("T", 1)[1])
        return bool(title_answer(api, user.id, number)) or (
            needle in await cluster.queued_updates(user.id)
        )

    deadline = time.monotonic() + 30
    while not await accepted():
        assert time.monotonic() < deadline, f"{text!r} was never accepted"
        await asyncio.sleep(0.02)


async def chat_sequence(cluster: Cluster, user: TgUser, numbers: range) -> None:
    for n in numbers:
        await send_and_wait_accepted(cluster, user, f"add a title saying T{n}")
        if n % 2 == 0:
            await send_and_wait_accepted(cluster, user, "/status")


@pytest.mark.timeout(120)
async def test_three_replicas_lose_nothing_when_one_dies(cluster: Cluster) -> None:
    api = cluster.api
    exporter = api.user(9100)
    others = [api.user(9101 + i) for i in range(3)]
    everyone = [exporter, *others]
    for user in everyone:
        api.send_text(user, "make a 5 second video of a harbour at dawn")
    for user in everyone:
        await api.wait_text(user.id, "Generated a 5s clip", timeout=30)

    # The other chats go first; their edits are answered before the kill (a job killed in
    # the instant between its answer and its record of it would be reported on top).
    await asyncio.gather(*(chat_sequence(cluster, u, range(1, 3)) for u in others))
    await until(
        lambda: all(title_answer(api, u.id, n) for u in others for n in range(1, 3)),
        30,
        "the other chats' first edits",
    )

    # The exporter's render starts; its replica holds the chat while following it.
    api.send_command(exporter, "export")
    export_started = time.monotonic()
    await api.wait_text(exporter.id, "Rendering", timeout=20)
    owner = await cluster.redis.get(cluster.key(exporter.id, "lock"))
    assert owner is not None, "the chat is held while its export runs"
    pid = int(owner.decode().split(":")[-2])
    (doomed,) = [r for r in cluster.replicas if r.process.pid == pid]

    # Edits pile up behind the export; then the holder dies, mid-render.
    await chat_sequence(cluster, exporter, range(1, 3))
    for user in others:
        while await cluster.redis.exists(cluster.key(user.id, "running")):
            await asyncio.sleep(0.02)
    elapsed = time.monotonic() - export_started
    assert not api.videos(exporter.id), f"the render is still running ({elapsed:.1f} s)"
    killed_at = time.monotonic()
    doomed.process.send_signal(signal.SIGKILL)
    await doomed.process.wait()

    await asyncio.gather(*(chat_sequence(cluster, u, range(3, EDITS + 1)) for u in everyone))
    while (await cluster.redis.get(cluster.key(exporter.id, "lock")) or owner) == owner:
        await asyncio.sleep(0.02)
    taken_over = time.monotonic() - killed_at

    def all_answered() -> bool:
        return all(title_answer(api, u.id, n) for u in everyone for n in range(1, EDITS + 1))

    await until(all_answered, 45, "every edit answered")
    await until(lambda: api.videos(exporter.id), 30, "the export")

    counts = {
        (u.id, n): len(title_answer(api, u.id, n)) for u in everyone for n in range(1, EDITS + 1)
    }
    assert set(counts.values()) == {1}, f"each edit answered exactly once: {counts}"
    for user in everyone:
        answers = [title_answer(api, user.id, n)[0].message_id for n in range(1, EDITS + 1)]
        assert answers == sorted(answers), f"chat {user.id} answered out of order"
        statuses = [t for t in api.texts(user.id) if t.startswith("📋")]
        assert len(statuses) == EDITS // 2, f"chat {user.id}: one answer per /status"
        assert not [t for t in api.texts(user.id) if "Sorry" in t]

    (video,) = api.videos(exporter.id)
    assert video.created_at > killed_at, "delivered after the kill, by a living replica"
    first_edit = title_answer(api, exporter.id, 1)[0]
    assert video.message_id < first_edit.message_id, "the edits waited for the export"
    assert await cluster.redis.scard(f"{cluster.prefix}:pending") == 0
    assert len(cluster.sim.requests_to("/cancel")) == 0
    texts = [t for u in everyone for t in api.texts(u.id)]
    refused = [d for d in api.balanced_deliveries if d[2] != 200]
    print(
        f"\nreplicas: 3, killed pid {pid} mid-render; chats: {len(everyone)}; "
        f"edits: {len(counts)} answered once each, "
        f"{len([t for t in texts if t.startswith('⚠️')])} of them by an interrupted notice; "
        f"{len([t for t in texts if t.startswith('⏳ Still working on')])} busy notices; "
        f"{len(refused)} deliveries refused by the dead replica and sent on; "
        f"killed {elapsed:.1f} s into an {sim_config().render_seconds:.0f} s render; "
        f"chat taken over {taken_over:.1f} s and export delivered "
        f"{video.created_at - killed_at:.1f} s after the kill"
    )
