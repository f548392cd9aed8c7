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

import pytest
from redis.asyncio import Redis

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.redis_server import RedisProcess
from tests.replica_fixtures import balanced, deliveries_of, settled_answers, sim_config
from tests.waiting import until


@pytest.mark.timeout(120)
async def test_a_replica_killed_before_storing_an_update_leaves_it_to_another(
    own_redis: RedisProcess,
) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    redis = Redis.from_url(own_redis.url)
    urls = [own_redis.url] * 2
    async with FakeBotApi(webhook_retry_s=0.05) as api, Simulator(sim_config()) as sim:
        try:
            async with balanced(api, sim, urls, ns) as (first, second):
                ann = api.user(9300)
                await redis.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
                try:
                    update = api.send_text(ann, "add a title saying T1")
                    uid = update["update_id"]
                    await until(lambda: api.webhook_calling == (uid, first.url), 10, "the call")
                    # The call stays unanswered while the message cannot be stored.
                    await asyncio.sleep(0.5)
                    assert api.webhook_calling == (uid, first.url)
                    assert [d for d in api.balanced_deliveries if d[0] == uid] == []
                    first.process.send_signal(signal.SIGKILL)
                    await first.process.wait()
                    await until(
                        lambda: (
                            api.webhook_calling is not None and api.webhook_calling[1] == second.url
                        ),
                        10,
                        "the update delivered again, to the living replica",
                    )
                finally:
                    await redis.execute_command("CLIENT", "UNPAUSE")
                answers = await settled_answers(api, ann.id)
                deliveries = deliveries_of(api, uid)
        finally:
            await redis.aclose()
    assert len(answers) == 1, "answered once"
    assert deliveries[0] == (first.url, 0), "the killed replica never acknowledged it"
    assert deliveries[-1] == (second.url, 200)
    assert [s for _, s in deliveries].count(200) == 1
