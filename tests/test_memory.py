"""A process forgets the chats it is done with: nothing per chat stays behind in the
conversation once a chat has no job and no waiting message. (benchmarks/bench_soak.py
measures the whole process over 50,000 chats.)"""

from __future__ import annotations

import asyncio
import gc

from bot.conversation.state import ChatRuntime
from tests.conversation_fixtures import HarnessFactory, Recorder

# At once: within the test Redis client's 100 connections (the bot's own pool waits instead).
CHATS = 40


def alive(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


async def test_idle_chats_leave_nothing_behind(make_harness: HarnessFactory) -> None:
    # No periodic sweep during the test: a sweep may start a short-lived worker for a chat
    # just finished, which is released in turn but could be caught alive here.
    h = await make_harness(sweep_interval_s=3600)
    before = alive(ChatRuntime)
    screens = [Recorder() for _ in range(CHATS)]

    async def chat(n: int) -> None:
        msg = h.inbound("make a 3 second video of a kite", chat_id=5000 + n)
        await h.conv.handle(msg, screens[n])
        await h.conv.handle(h.inbound("/status", chat_id=5000 + n), screens[n])

    await asyncio.gather(*(chat(n) for n in range(CHATS)))
    await h.conv.wait_idle()
    assert all("Generated a 3s clip" in s.joined() for s in screens)
    assert not [t for s in screens for t in s.texts() if t.startswith(("🧠", "Sorry"))]
    assert alive(ChatRuntime) == before, "every chat's runtime released"
