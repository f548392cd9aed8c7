"""A replica killed between receiving a webhook call and storing its message loses nothing.

Two `nemobot run --webhook` processes behind the round-robin balancer, on a Redis of their
own. Writes to Redis are paused (CLIENT PAUSE WRITE), so the replica that receives the
update cannot store it; it must hold the call unanswered rather than acknowledge it. It
is killed while holding it; the balancer hands the update to the other replica, Redis
resumes, and that replica answers the message, once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.redis_server import RedisProcess
from tests.test_replicas import (
    Replica,
    listening,
    sim_config,
    start_replica,
    title_answer,
    wait_until,
)


@pytest.fixture
def own_redis() -> Iterator[str]:
    """Pausing writes pauses every client of the server: this test gets its own."""
    server = RedisProcess().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.timeout(120)
async def test_a_replica_killed_before_storing_an_update_leaves_it_to_another(
    own_redis: str,
) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    redis = Redis.from_url(own_redis)
    replicas: list[Replica] = []
    async with FakeBotApi(webhook_retry_s=0.05) as api, Simulator(sim_config()) as sim:
        try:
            for _ in range(2):
                replicas.append(await start_replica(api, sim, own_redis, ns))
            first, second = replicas
            api.balance([first.url, second.url])
            await api.wait_for(
                lambda: all(listening(r.port) for r in replicas) and api.webhook_url,
                60,
                "two replicas",
            )
            ann = api.user(9300)
            await redis.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
            update = api.send_text(ann, "add a title saying T1")
            uid = update["update_id"]
            await wait_until(lambda: api.webhook_calling == (uid, first.url), 10, "the call")
            # The call stays unanswered while the message cannot be stored.
            await asyncio.sleep(0.5)
            assert api.webhook_calling == (uid, first.url)
            assert [d for d in api.balanced_deliveries if d[0] == uid] == []
            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
            await wait_until(
                lambda: api.webhook_calling is not None and api.webhook_calling[1] == second.url,
                10,
                "the update delivered again, to the living replica",
            )
            await redis.execute_command("CLIENT", "UNPAUSE")
            await wait_until(lambda: title_answer(api, ann.id, 1), 30, "the answer")
            await asyncio.sleep(1.0)
            answers = title_answer(api, ann.id, 1)
            deliveries = [(url, status) for u, url, status in api.balanced_deliveries if u == uid]
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
            for replica in replicas:
                if replica.process.returncode is None:
                    replica.process.send_signal(signal.SIGTERM)
            for replica in replicas:
                try:
                    await asyncio.wait_for(replica.process.communicate(), 30)
                except TimeoutError:
                    replica.process.kill()
                    await replica.process.wait()
            await redis.aclose()
    assert len(answers) == 1, "answered once"
    assert deliveries[0] == (first.url, 0), "the killed replica never acknowledged it"
    assert deliveries[-1] == (second.url, 200)
    assert [s for _, s in deliveries].count(200) == 1
