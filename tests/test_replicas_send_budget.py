"""Two replicas on one bot token keep to one send budget between them.

Two `nemobot run --webhook` processes behind the round-robin balancer, on one Redis, the
fake Bot API server enforcing Telegram's limits (30 sends in any second, all chats
together). Sixty new chats write at once, thirty reaching each replica: alone, each would
send its thirty welcomes within the second, sixty between them, and Telegram would refuse
half. Sharing the budget, they send thirty a second between them.
"""

from __future__ import annotations

import uuid

import pytest

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.redis_server import RedisProcess
from tests.replica_fixtures import balanced, sim_config
from tests.waiting import until

CHATS = 60


@pytest.mark.timeout(120)
async def test_two_replicas_send_within_one_budget(own_redis: RedisProcess) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    async with (
        FakeBotApi() as api,
        Simulator(sim_config()) as sim,
        balanced(api, sim, [own_redis.url] * 2, ns),
    ):
        api.telegram_limits(per_second=30, chat_interval_s=1.0, retry_after=1)
        users = [api.user(9_400_000 + i) for i in range(CHATS)]
        for user in users:
            api.send_command(user, "start")

        def welcomed() -> bool:
            return all(
                any(m.text.startswith("I make videos") for m in api.sent(u.id, "text"))
                for u in users
            )

        await until(welcomed, 60, "every welcome")
        sends = [c for c in api.calls if c.chat_id in {u.id for u in users}]
        refused = [c for c in sends if c.error_code == 429]
        # Alone, each would send its thirty at once: thirty refused. Shared, none is sent
        # into the limit; a call reaching the server after one granted later may still be.
        assert len(refused) <= 3, f"{len(refused)} of {len(sends)} calls refused"
        # Both replicas answered: the budget was shared, not one replica doing it all.
        assert len({d[1] for d in api.balanced_deliveries}) == 2
