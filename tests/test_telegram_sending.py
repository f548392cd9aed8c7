"""The send scheduler: answers before first signs of life before progress before typing,
chats in turn, superseded edits never sent, `retry_after` honoured and counted, and no 429
provoked against Telegram's limits (the fake Bot API server enforcing them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from telegram import Bot

from bot.io import ChatAction, Progress, SendText, Stream
from bot.ops.metrics import Metrics
from bot.telegram import RenderConfig, Renderer
from bot.telegram.sending import Priority, SendLimits, SendScheduler
from tests.fake_botapi import FakeBotApi


async def grant_order(scheduler: SendScheduler, asks: list[tuple[int, Priority]]) -> list[int]:
    """With this second's budget spent, ask for every slot at once; the indexes of the asks
    in the order they were granted."""
    for chat_id in range(-1, -1 - scheduler.limits.per_second, -1):
        await scheduler.slot(chat_id, Priority.ANSWER)
    order: list[int] = []

    async def ask(index: int, chat_id: int, priority: Priority) -> None:
        await scheduler.slot(chat_id, priority)
        order.append(index)

    await asyncio.gather(*(ask(i, c, p) for i, (c, p) in enumerate(asks)))
    return order


async def test_answers_go_first_then_signs_of_life_then_progress_then_typing() -> None:
    scheduler = SendScheduler(SendLimits(per_second=4, margin_s=0.0))
    asks = [(100 + n, p) for n, p in enumerate(list(reversed(Priority)) * 2)]
    order = await grant_order(scheduler, asks)
    classes = [asks[i][1] for i in order]
    assert classes == sorted(classes), classes


async def test_chats_take_turns_whatever_their_backlog() -> None:
    limits = SendLimits(per_second=3, private_interval_s=0.0, margin_s=0.0, chat_margin_s=0.0)
    scheduler = SendScheduler(limits)
    asks = [(1, Priority.ANSWER)] * 4 + [(2, Priority.ANSWER), (3, Priority.ANSWER)]
    order = await grant_order(scheduler, asks)
    chats = [asks[i][0] for i in order]
    assert chats[:3] == [1, 2, 3], "a chat's backlog does not hold the others up"


class BudgetSpent:
    """A scheduler of two sends a second whose second's budget is spent: the asks that
    follow wait for the next second, and `order` records the order they were granted."""

    def __init__(self) -> None:
        limits = SendLimits(per_second=2, private_interval_s=0.0, margin_s=0.0, chat_margin_s=0.0)
        self.scheduler = SendScheduler(limits)
        self.began = self.scheduler.now()
        self.order: list[int] = []

    async def spend(self) -> BudgetSpent:
        for chat_id in (-1, -2):
            await self.scheduler.slot(chat_id, Priority.ANSWER)
        return self

    async def ask(self, chat_id: int, since: float) -> None:
        await self.scheduler.slot(chat_id, Priority.ANSWER, since=since)
        self.order.append(chat_id)


async def test_the_chat_whose_job_began_first_goes_first_however_late_it_asks() -> None:
    """A crowd of new chats must not keep a chat that began earlier from finishing: its
    next message goes before their first ones, so answers complete in the order asked."""
    spent = await BudgetSpent().spend()
    ask, began, order = spent.ask, spent.began, spent.order
    crowd = [asyncio.create_task(ask(200 + i, began + 1.0 + i)) for i in range(4)]
    await asyncio.sleep(0)  # the crowd asks first ...
    earlier = asyncio.create_task(ask(100, began))  # ... the chat begun earlier asks last
    await asyncio.gather(*crowd, earlier)
    assert order == [100, 200, 201, 202, 203], order


async def test_a_backlog_counts_as_begun_a_pace_later_per_turn() -> None:
    """A job's backlog goes before jobs begun well after it, never behind a whole crowd
    of them, and takes turns with jobs begun at about its time."""
    spent = await BudgetSpent().spend()
    ask, began, order = spent.ask, spent.began, spent.order
    asks = [ask(100, began) for _ in range(3)]  # a backlog of three
    asks += [ask(200 + i, began + 10.0) for i in range(3)]  # jobs begun long after
    asks += [ask(300, began + 0.5)]  # a job begun just after it
    await asyncio.gather(*asks)
    assert order == [100, 300, 100, 100, 200, 201, 202], order


async def test_a_status_lines_last_word_goes_before_other_chats_first_signs_of_life() -> None:
    """The job waits for its status line's last word ("Ready"): behind a crowd of new
    jobs' first messages it would not finish until every one of them was shown."""
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        per_second = 4
        limits = SendLimits(
            per_second=per_second, private_interval_s=0.0, margin_s=0.0, chat_margin_s=0.0
        )
        scheduler = SendScheduler(limits)
        async with bot, httpx.AsyncClient() as http:
            renderer = Renderer(bot, http, RenderConfig(), sending=scheduler)
            mine = renderer.outbox(1)
            await mine.send(Progress("setup", "Setting things up"))
            await api.wait_for(lambda: api.sent(1), 5, "the status line shown")
            for chat_id in range(-1, -1 - per_second, -1):  # this second's budget spent
                await scheduler.slot(chat_id, Priority.ANSWER)
            crowd = [renderer.outbox(c) for c in range(100, 112)]
            for outbox in crowd:
                await outbox.send(Progress("work", "Working on it"))
            await asyncio.sleep(0.05)  # their first messages wait for a turn
            await mine.send(Progress("setup", "Ready", done=True))
            for outbox in crowd:
                await outbox.close()
        (edit,) = api.calls_of("editMessageText")
        shown_before = [
            c
            for c in api.calls_of("sendMessage")
            if c.chat_id in range(100, 112) and c.at < edit.at
        ]
        assert len(shown_before) < per_second, "the last word waited behind the crowd"
        assert [m.text for m in api.sent(1)] == ["Ready"]


async def test_a_chat_waits_its_interval_and_a_withdrawn_slot_is_given_back() -> None:
    loop = asyncio.get_running_loop()
    scheduler = SendScheduler(SendLimits(private_interval_s=0.3, margin_s=0.0, chat_margin_s=0.0))
    await scheduler.slot(7, Priority.ANSWER)
    first = loop.time()
    waiting = asyncio.create_task(scheduler.slot(7, Priority.PROGRESS))
    await asyncio.sleep(0.05)
    waiting.cancel()
    await scheduler.slot(7, Priority.ANSWER)
    second = loop.time()
    await scheduler.slot(7, Priority.ANSWER)
    assert second - first >= 0.29, "one chat is not sent to faster than its interval"
    assert scheduler.waiting() == 0, "the withdrawn request left nothing behind"


async def test_typing_only_with_budget_to_spare() -> None:
    scheduler = SendScheduler(SendLimits(per_second=6, margin_s=0.0))
    asks = [(500 + i, Priority.TYPING) for i in range(3)]
    asks += [(600 + i, Priority.ANSWER) for i in range(8)]
    order = await grant_order(scheduler, asks)
    classes = [asks[i][1] for i in order]
    assert classes[:8] == [Priority.ANSWER] * 8, classes


@dataclass
class Rig:
    api: FakeBotApi
    renderer: Renderer
    metrics: Metrics


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeBotApi() as api:
        api.telegram_limits(per_second=30, chat_interval_s=1.0, retry_after=1)
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        metrics = Metrics()
        # Within the server's limits by a margin that a loaded test machine's delays (a
        # request reaching the server later than the one after it) do not eat up.
        limits = SendLimits(per_second=20, chat_margin_s=0.3)
        sending = SendScheduler(limits, on_429=metrics.telegram_429.inc)
        async with bot, httpx.AsyncClient() as http:
            renderer = Renderer(bot, http, RenderConfig(typing_every_s=0.5), sending=sending)
            yield Rig(api, renderer, metrics)


def four_twenty_nines(metrics: Metrics) -> float:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "nemobot_telegram_429_total":
                return sample.value
    raise AssertionError("no 429 counter")


async def test_a_burst_to_many_chats_meets_telegrams_limits_without_a_429(rig: Rig) -> None:
    chats = range(9000, 9045)

    async def talk(chat_id: int) -> None:
        outbox = rig.renderer.outbox(chat_id)
        await outbox.send(ChatAction("typing"))
        await outbox.send(SendText(f"first to {chat_id}"))
        await outbox.send(SendText(f"second to {chat_id}"))
        await outbox.close()

    await asyncio.gather(*(talk(c) for c in chats))
    for chat_id in chats:
        assert rig.api.texts(chat_id) == [f"first to {chat_id}", f"second to {chat_id}"]
    assert not rig.api.calls_of("sendMessage", ok=False), "no call refused"
    assert four_twenty_nines(rig.metrics) == 0


async def test_retry_after_is_honoured_for_that_chat_and_counted(rig: Rig) -> None:
    rig.api.flood(retry_after=2, times=1, chat_id=4242, methods=["sendMessage"])
    flooded = rig.renderer.outbox(4242)
    refused = asyncio.create_task(flooded.send(SendText("refused once, then delivered")))
    await rig.api.wait_for(lambda: rig.api.calls_of("sendMessage"), 5, "the refused call")
    other = rig.renderer.outbox(4343)
    await other.send(SendText("not held up"))
    await refused
    calls = [c for c in rig.api.calls_of("sendMessage") if c.chat_id == 4242]
    assert [c.error_code for c in calls] == [429, None]
    assert calls[1].at - calls[0].at >= 2.0, "nothing sent to the chat before retry_after"
    assert rig.api.texts(4242) == ["refused once, then delivered"]
    other_call = next(c for c in rig.api.calls_of("sendMessage") if c.chat_id == 4343)
    assert other_call.at < calls[1].at, "other chats went on meanwhile"
    assert four_twenty_nines(rig.metrics) == 1


async def test_under_congestion_a_stream_skips_superseded_edits_and_ends_in_one(
    rig: Rig,
) -> None:
    stream_chat, crowd = 4242, range(7000, 7060)
    outbox = rig.renderer.outbox(stream_chat)
    await outbox.send(Stream("r", "Thinking"))
    await rig.api.wait_for(lambda: rig.api.sent(stream_chat), 5, "the first sign of life")
    answers = [
        asyncio.create_task(rig.renderer.outbox(c).send(SendText(f"answer {c}"))) for c in crowd
    ]
    text = "Thinking"
    for i in range(30):
        text += f" step{i}"
        await outbox.send(Stream("r", text))
        await asyncio.sleep(0.05)
    await outbox.send(Stream("r", text + " — done.", final=True))
    await asyncio.gather(*answers)
    (message,) = rig.api.sent(stream_chat)
    assert message.text == text + " — done."
    assert len(message.edits) <= 2, "30 texts shown in at most two edits"
    last_answer = max(c.at for c in rig.api.calls_of("sendMessage") if c.chat_id in crowd)
    progress = [e.at for e in message.edits[:-1]]
    assert all(at > last_answer for at in progress), "progress waits for the answers"
    assert not rig.api.calls_of("editMessageText", ok=False)
