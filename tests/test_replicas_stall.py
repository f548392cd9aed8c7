"""A Redis that stalls (SIGSTOP) longer than the bot's Redis timeout never costs a message.

The webhook call of an update that could not be stored is answered 503, never 200, so
Telegram delivers it again; once Redis is back, the message is answered, once.
"""

from __future__ import annotations

import uuid

import pytest

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.redis_server import RedisProcess
from tests.replica_fixtures import balanced, settled_answers, sim_config
from tests.waiting import until


@pytest.mark.timeout(120)
async def test_an_update_that_could_not_be_stored_is_never_acknowledged(
    own_redis: RedisProcess,
) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    env = {"REDIS_TIMEOUT_S": "2"}
    async with (
        FakeBotApi(webhook_retry_s=0.05) as api,
        Simulator(sim_config()) as sim,
        balanced(api, sim, [own_redis.url], ns, **env),
    ):
        ann = api.user(9500)
        own_redis.freeze()
        try:
            uid = api.send_text(ann, "add a title saying T1")["update_id"]

            def answered_calls() -> list[int]:
                return [s for u, _, s in api.balanced_deliveries if u == uid]

            await until(answered_calls, 30, "the webhook call answered")
        finally:
            own_redis.thaw()
        answers = await settled_answers(api, ann.id)
        statuses = answered_calls()
    assert statuses[0] == 503, f"the call while Redis stalled was answered {statuses[0]}"
    assert statuses[-1] == 200
    assert len(answers) == 1, "answered once"
    assert not [t for t in api.texts(ann.id) if t.startswith("🧠")], "no failure told"
