"""SIGTERM with many jobs in flight: the bot stops taking work at once, leaves every queued
message in Redis, and exits well within Docker's grace period; another replica then runs
what it left, each message once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from backend.sim import Simulator
from tests.fake_botapi import FakeBotApi
from tests.replica_fixtures import listening, sim_config, start_replica, title_answer
from tests.waiting import until

CHATS = 150
GRACE_S = 10.0  # stop_grace_period in docker-compose.yml


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.timeout(180)
async def test_sigterm_with_jobs_in_flight_exits_in_time_and_loses_nothing(
    redis_url: str, redis: Redis
) -> None:
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    async with FakeBotApi(webhook_retry_s=0.05) as api, Simulator(sim_config()) as sim:
        api.telegram_limits(per_second=30, chat_interval_s=1.0)
        first = await start_replica(api, sim, redis_url, ns, LOCK_TTL_S="30")
        second = None
        try:
            api.balance([first.url])
            await api.wait_for(lambda: listening(first.port) and api.webhook_url, 60, "replica")
            prefix = f"{ns}:{api.bot_id}"
            users = [api.user(9600 + i) for i in range(CHATS)]
            # Every chat's first edit works for a long time; its second waits behind it.
            sim.config.edit_seconds = 120.0
            for user in users:
                api.send_text(user, "add a title saying T1")
            await until(lambda: len(sim.requests_to("/run_sse")) == CHATS, 90, "streams")
            for user in users:
                api.send_text(user, "add a title saying T2")

            async def all_queued() -> bool:
                pipe = redis.pipeline(transaction=False)
                for user in users:
                    pipe.llen(f"{prefix}:chat:{{{user.id}}}:inbox")
                return all(await pipe.execute())

            deadline = time.monotonic() + 60
            while not await all_queued():
                assert time.monotonic() < deadline, "second edits never queued"
                await asyncio.sleep(0.05)

            stopped_at = time.monotonic()
            first.process.send_signal(signal.SIGTERM)
            _, errors = await asyncio.wait_for(first.process.communicate(), 60)
            took = time.monotonic() - stopped_at
            assert first.process.returncode == 0, errors.decode()[-2000:]
            assert took < GRACE_S, f"exited {took:.1f} s after SIGTERM"
            assert await all_queued(), "every queued message is left in Redis"
            locks = [f"{prefix}:chat:{{{u.id}}}:lock" for u in users]
            assert not await redis.exists(*locks), "chats handed over at once"

            sim.config.edit_seconds = 0.02
            second = await start_replica(api, sim, redis_url, ns, LOCK_TTL_S="30")
            api.balance([second.url])

            def every_edit_answered() -> bool:
                return all(title_answer(api, u.id, n) for u in users for n in (1, 2))

            await until(every_edit_answered, 120, "every edit answered")
            counts = {len(title_answer(api, u.id, n)) for u in users for n in (1, 2)}
            assert counts == {1}, "each edit answered once"
        finally:
            for replica in (first, second):
                if replica is not None and replica.process.returncode is None:
                    replica.process.kill()
                    await replica.process.wait()
            keys = [k async for k in redis.scan_iter(match=f"{ns}:*", count=500)]
            if keys:
                await redis.delete(*keys)
    print(f"\nSIGTERM with {CHATS} jobs streaming and {CHATS} queued: exited in {took:.1f} s")
