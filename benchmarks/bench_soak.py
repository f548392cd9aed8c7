"""Memory over many chats: does a process forget the chats it is done with?

50,000 chats send one message each (an agent turn, streamed: token, session, answer)
through `Conversation.handle`, on a real Redis (the chats' state lives there, not in the
process). The simulator runs in its own process. The resident set size (RSS, after a
garbage collection) is read after the first 5,000 chats and after all of them; the
target: RSS after all ≤ RSS after 5,000 + 10%.

Run: python benchmarks/bench_soak.py  (writes the `## soak` section)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import BlockingConnectionPool, Redis  # noqa: E402
from results import machine, now, write_section  # noqa: E402
from services import Recorder, simulator_process  # noqa: E402

from bot.app import build_app  # noqa: E402
from bot.io import Inbound, Stream  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.store import RedisChatStore  # noqa: E402
from tests.redis_server import reachable_redis  # noqa: E402

CHATS = 50_000
WARM = 5_000
AT_ONCE = 100
TEXT = "make a 3 second video of a lighthouse at night"


def rss_mib() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def soak(base_url: str, redis_url: str) -> dict[str, float]:
    settings = load_settings(nemo_api_base=base_url, nemo_token=None, redis_url=None)
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=64))
    namespace = f"nemobot-bench:{uuid.uuid4().hex[:8]}"
    app = build_app(settings, "terminal", store=RedisChatStore(redis, namespace))
    conv = app.conversation
    answered = 0

    async def chat(chat_id: int) -> None:
        nonlocal answered
        screen = Recorder()
        await conv.handle(Inbound(chat_id, chat_id, TEXT, language_code="en"), screen)
        if any(isinstance(op, Stream) and op.final for op in screen.ops):
            answered += 1

    marks: dict[str, float] = {"start": rss_mib()}
    started = time.perf_counter()
    try:
        for first in range(0, CHATS, AT_ONCE):
            await asyncio.gather(*(chat(10_000_000 + i) for i in range(first, first + AT_ONCE)))
            if first + AT_ONCE == WARM:
                marks["warm"] = rss_mib()
        marks["end"] = rss_mib()
        marks["seconds"] = time.perf_counter() - started
        marks["answered"] = answered
    finally:
        await app.aclose()
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
        await redis.aclose()
    return marks


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    with reachable_redis() as redis, simulator_process() as base_url:
        marks = asyncio.run(soak(base_url, redis))
    growth = marks["end"] / marks["warm"] - 1
    verdict = "met" if growth <= 0.10 else "NOT MET"
    print(
        f"RSS MiB: start {marks['start']:.1f}, after {WARM:,} chats {marks['warm']:.1f}, "
        f"after {CHATS:,} {marks['end']:.1f} ({growth:+.1%}, target ≤ +10%: {verdict}); "
        f"{int(marks['answered']):,} answered in {marks['seconds']:.0f} s"
    )
    row = (
        f"| this process | {marks['start']:.1f} | {marks['warm']:.1f} | {marks['end']:.1f} "
        f"| {growth:+.1%} | ≤ +10%: {verdict} |"
    )
    write_section(
        "soak",
        f"""Measured {now()} on {machine()}.
{CHATS:,} chats, one agent turn each ({AT_ONCE} at a time) through `Conversation.handle` on a
real Redis; simulator in its own process. RSS after a garbage collection.

| RSS (MiB) | at start | after {WARM:,} chats | after {CHATS:,} chats | growth | target |
|---|---:|---:|---:|---:|---|
{row}

{int(marks["answered"]):,} of {CHATS:,} turns answered in {marks["seconds"]:.0f} s.""",
    )


if __name__ == "__main__":
    main()
