"""Replicas on one bot token share its send budget through the store: two schedulers on
one real Redis never grant more than Telegram's 30 sends in any second between them, in
their own order, and a store that cannot be reached leaves each to its own budget."""

from __future__ import annotations

import asyncio
import bisect
import logging
import time

import pytest
from redis.asyncio import Redis

from bot.store import Lease, RedisChatStore
from bot.telegram.sending import Priority, SendLimits, SendScheduler, SharedSends
from tests.redis_server import RedisProcess, free_port

LIMITS = SendLimits(per_second=30)


def busiest_second(times: list[float]) -> int:
    """The most grants in any window of one second."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


async def crowd(scheduler: SendScheduler, first_chat: int, chats: int, sends: int) -> list[float]:
    """`chats` chats asking for `sends` slots each at once; when each slot was granted."""
    granted: list[float] = []

    async def chat(chat_id: int) -> None:
        for _ in range(sends):
            await scheduler.slot(chat_id, Priority.ANSWER)
            granted.append(time.monotonic())

    await asyncio.gather(*(chat(first_chat + i) for i in range(chats)))
    return granted


def shared_by(store: RedisChatStore) -> SharedSends:
    return store.take_sends


async def test_two_replicas_stay_within_one_budget(redis_store: RedisChatStore) -> None:
    # Alone, each process would spend the whole budget: 60 in a second between two.
    alone = await asyncio.gather(
        crowd(SendScheduler(LIMITS), 1000, 45, 2), crowd(SendScheduler(LIMITS), 2000, 45, 2)
    )
    assert busiest_second(alone[0] + alone[1]) > 45
    first = SendScheduler(LIMITS, shared=shared_by(redis_store))
    second = SendScheduler(LIMITS, shared=shared_by(redis_store))
    started = time.monotonic()
    both = await asyncio.gather(crowd(first, 3000, 45, 2), crowd(second, 4000, 45, 2))
    assert busiest_second(both[0] + both[1]) <= LIMITS.per_second
    # The budget is used, not wasted: 180 sends at 30 a second (plus the margins).
    assert time.monotonic() - started < 180 / LIMITS.per_second * 1.25
    # Each got a fair part of it.
    assert abs(len([t for t in both[0] if t < started + 2]) - 30) <= 15


async def test_held_requests_keep_the_schedulers_order(redis_store: RedisChatStore) -> None:
    scheduler = SendScheduler(LIMITS, shared=shared_by(redis_store))
    # Another replica spent this second's budget.
    await crowd(SendScheduler(LIMITS, shared=shared_by(redis_store)), 5000, 30, 1)
    order: list[str] = []

    async def ask(name: str, chat_id: int, priority: Priority) -> None:
        await scheduler.slot(chat_id, priority)
        order.append(name)

    await asyncio.gather(
        ask("typing", 1, Priority.TYPING),
        ask("progress", 2, Priority.PROGRESS),
        ask("first sign", 3, Priority.FIRST),
        ask("answer", 4, Priority.ANSWER),
    )
    assert order == ["answer", "first sign", "progress", "typing"]


async def test_a_withdrawn_held_request_frees_its_chat(redis_store: RedisChatStore) -> None:
    scheduler = SendScheduler(LIMITS, shared=shared_by(redis_store))
    await crowd(SendScheduler(LIMITS, shared=shared_by(redis_store)), 6000, 30, 1)
    waiting = asyncio.create_task(scheduler.slot(7, Priority.PROGRESS))
    await asyncio.sleep(0.1)  # held for a shared slot
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    async with asyncio.timeout(5):
        await scheduler.slot(7, Priority.ANSWER)  # the chat is not left held
    assert scheduler.waiting() == 0


async def test_an_unreachable_store_leaves_each_to_its_own_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = RedisChatStore(Redis(port=free_port(), socket_connect_timeout=0.2), "down")
    scheduler = SendScheduler(LIMITS, shared=shared_by(down))
    with caplog.at_level(logging.INFO):
        async with asyncio.timeout(10):
            granted = await crowd(scheduler, 8000, 40, 2)
    assert len(granted) == 80
    assert busiest_second(granted) <= LIMITS.per_second
    warned = [r for r in caplog.records if "shared send budget" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert not any(r.exc_info for r in caplog.records)


async def test_a_stalled_store_does_not_stall_sending(own_redis: RedisProcess) -> None:
    store = RedisChatStore(Redis.from_url(own_redis.url), "stalled")
    scheduler = SendScheduler(LIMITS, shared=shared_by(store))
    await crowd(scheduler, 9000, 5, 1)  # the store answers: slots are shared
    own_redis.freeze()
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):
            await crowd(scheduler, 9100, 10, 1)
        assert time.monotonic() - started < 5.0, "waited for the stalled store"
    finally:
        own_redis.thaw()


async def test_a_request_cancelled_as_its_slot_arrives_is_not_granted() -> None:
    answer = asyncio.Event()

    async def slow_store(want: int, per_window: int, window_s: float) -> Lease:
        await answer.wait()
        return Lease(want)

    errors: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        scheduler = SendScheduler(LIMITS, shared=slow_store)
        asking = asyncio.create_task(scheduler.slot(11, Priority.ANSWER))
        await asyncio.sleep(0.05)  # held, its lease on the way
        answer.set()  # the slot arrives ...
        asking.cancel()  # ... as the request is withdrawn
        with pytest.raises(asyncio.CancelledError):
            await asking
        async with asyncio.timeout(5):
            await scheduler.slot(11, Priority.ANSWER)
        assert scheduler.waiting() == 0
        await asyncio.sleep(0.05)
        assert errors == []
    finally:
        loop.set_exception_handler(None)


async def test_waiting_for_a_slow_store_is_quiet(own_redis: RedisProcess) -> None:
    """While the store is slow to answer, the scheduler sleeps until something can change;
    it does not wake every millisecond at a moment already past."""
    looks = 0

    def clock() -> float:
        nonlocal looks
        looks += 1
        return time.monotonic()

    store = RedisChatStore(Redis.from_url(own_redis.url), "slow")
    scheduler = SendScheduler(LIMITS, clock=clock, shared=shared_by(store))
    await scheduler.slot(1, Priority.ANSWER)
    await asyncio.sleep(0.9)
    own_redis.freeze()  # the next round trip takes until the scheduler gives up on it
    try:
        looks = 0
        async with asyncio.timeout(5):
            await crowd(scheduler, 100, 10, 1)  # half held, half waiting their turn
    finally:
        own_redis.thaw()
    assert looks < 120, f"the clock was read {looks} times in about half a second"
