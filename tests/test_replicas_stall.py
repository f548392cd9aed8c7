"""A Redis that stalls (SIGSTOP) longer than the bot's Redis timeout never costs a message.

The webhook call of an update that could not be stored is answered 503, never 200, so
Telegram delivers it again; once Redis is back, the message is answered, once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator

import pytest

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.redis_server import RedisProcess
from tests.test_replicas import listening, sim_config, start_replica, title_answer, wait_until


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """Stalling the server stalls every client: this test gets its own."""
    server = RedisProcess().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(120)
async def test_an_update_that_could_not_be_stored_is_never_acknowledged(
    own_redis: RedisProcess,
) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    async with FakeBotApi(webhook_retry_s=0.05) as api, Simulator(sim_config()) as sim:
        replica = await start_replica(api, sim, own_redis.url, ns, REDIS_TIMEOUT_S="2")
        try:
            api.balance([replica.url])
            await api.wait_for(
                lambda: listening(replica.port) and api.webhook_url, 60, "the replica"
            )
            ann = api.user(9500)
            own_redis.freeze()
            uid = api.send_text(ann, "add a title saying T1")["update_id"]

            def answered_calls() -> list[int]:
                return [s for u, _, s in api.balanced_deliveries if u == uid]

            await wait_until(answered_calls, 30, "the webhook call answered")
            own_redis.thaw()
            await wait_until(lambda: title_answer(api, ann.id, 1), 30, "the answer")
            await asyncio.sleep(1.0)
            answers = title_answer(api, ann.id, 1)
            statuses = answered_calls()
        finally:
            own_redis.thaw()
            replica.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(replica.process.communicate(), 30)
            except TimeoutError:
                replica.process.kill()
                await replica.process.wait()
    assert statuses[0] == 503, f"the call while Redis stalled was answered {statuses[0]}"
    assert statuses[-1] == 200
    assert len(answers) == 1, "answered once"
    assert not [t for t in api.texts(ann.id) if t.startswith("🧠")], "no failure told"
