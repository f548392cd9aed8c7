"""A replica stopped right after its first write for an update loses nothing.

Two `nemobot run --webhook` processes behind the round-robin balancer; the first reaches
Redis through a proxy that lets the first write for the update through and holds the
next one, where the first replica is killed (SIGKILL). Marking an update seen and storing
its message used to be those two writes: the update, delivered again to the second
replica, was then taken for a duplicate and never answered. Now they are one step, so the
message is either stored (and run by the second replica) or not seen (and run when it
arrives again): answered once either way.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.redis_proxy import HoldingProxy
from tests.replica_fixtures import balanced, deliveries_of, settled_answers, sim_config


@pytest.mark.timeout(120)
async def test_a_replica_killed_between_seeing_and_storing_an_update_loses_nothing(
    redis_url: str,
) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    proxy = HoldingProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    proxied = (await proxy.start()).rsplit("/", 1)[0] + "/" + redis_url.rsplit("/", 1)[1]
    async with FakeBotApi(webhook_retry_s=0.05) as api, Simulator(sim_config()) as sim:
        try:
            async with balanced(api, sim, [proxied, redis_url], ns) as (first, _):
                ann = api.user(9400)
                proxy.hold_next_write(after=1)
                update = api.send_text(ann, "add a title saying T1")
                uid = update["update_id"]
                await asyncio.wait_for(proxy.holding.wait(), 10)
                first.process.send_signal(signal.SIGKILL)
                await first.process.wait()
                proxy.drop()
                answers = await settled_answers(api, ann.id)
                deliveries = deliveries_of(api, uid)
        finally:
            await proxy.stop()
    assert len(answers) == 1, "answered once"
    assert deliveries[0][0] == first.url, "the first replica got the update first"
    assert [s for _, s in deliveries].count(200) == 1, deliveries
