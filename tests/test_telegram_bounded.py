"""The front end's per-chat records stay bounded however many chats it meets: a chat's
pace is forgotten once idle, recent entries are kept and old ones dropped, and the count
of chats for /stats stops holding ids past a limit."""

from __future__ import annotations

import httpx
from telegram import Bot

from bot.telegram.bounded import DistinctCount, Recent
from bot.telegram.outbox import RECORDS_LIMIT, FrontStats, Renderer
from bot.telegram.sending import Priority, SendLimits, SendScheduler


async def test_a_chats_pace_is_forgotten_once_it_is_idle() -> None:
    now = [1000.0]
    limits = SendLimits(per_second=10**9, private_interval_s=1.0, margin_s=0, chat_margin_s=0)
    scheduler = SendScheduler(limits, clock=lambda: now[0])
    for chat_id in range(1, 5001):
        await scheduler.slot(chat_id, Priority.ANSWER)
    assert scheduler.chats() == 5000, "each chat's pace holds for its interval"
    now[0] += 2.0
    await scheduler.slot(9999, Priority.ANSWER)
    assert scheduler.chats() == 1, "idle chats past their pace are forgotten"


async def test_records_of_many_chats_stay_bounded() -> None:
    async with httpx.AsyncClient() as http:
        renderer = Renderer(Bot("1:fake"), http)
        for chat_id in range(3 * RECORDS_LIMIT):
            assert renderer.action_due(chat_id, "typing")
            renderer.video_ids[f"https://videos.example/{chat_id}.mp4"] = f"file-{chat_id}"
        records = renderer.records()
    assert records["chat_actions"] <= RECORDS_LIMIT
    assert records["video_ids"] <= RECORDS_LIMIT
    last = 3 * RECORDS_LIMIT - 1
    assert renderer.video_ids.get(f"https://videos.example/{last}.mp4") == f"file-{last}"
    assert renderer.video_ids.get("https://videos.example/0.mp4") is None, "oldest dropped"


def test_recent_keeps_the_most_recently_used() -> None:
    recent: Recent[int, str] = Recent(3)
    for key in (1, 2, 3):
        recent[key] = str(key)
    assert recent.get(1) == "1"  # used: now the most recent
    recent[4] = "4"
    assert 2 not in recent and 1 in recent and 4 in recent
    assert len(recent) == 3


def test_the_count_of_chats_is_exact_when_small_and_bounded_when_large() -> None:
    stats = FrontStats()
    for chat_id in (5, 6, 5, -100123, 6):
        stats.chats.add(chat_id)
    assert len(stats.chats) == 3
    many = DistinctCount(exact_limit=1000)
    for chat_id in range(50_000):
        many.add(chat_id)
        many.add(chat_id)  # seen twice, counted once
    assert many.held() == 0, "no ids held past the limit"
    assert abs(len(many) - 50_000) < 50_000 * 0.05
