"""What the conversation layer costs on top of the backend calls it makes.

The simulator runs in a separate process on 127.0.0.1. Each measure is taken twice in the
same run: through `Conversation.handle` (router, store, lock, queue, outbox) and as the
bare `NemoApi` call(s) it wraps, so the difference is our overhead. Stores: the embedded
server on a unix socket, and a real Redis (local, or a throwaway server). Also measured:
many chats at once, and one chat flooded with messages (every one answered, run in order).

Run: python benchmarks/bench_conversation.py  (writes the `## conversation` section)
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import BlockingConnectionPool, Redis  # noqa: E402
from results import machine, now, write_section  # noqa: E402
from services import Recorder, simulator_process  # noqa: E402

from bot.app import build_app  # noqa: E402
from bot.conversation import MAX_QUEUED  # noqa: E402
from bot.io import Inbound, SendText, Stream  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.store import ChatStore, RedisChatStore  # noqa: E402
from bot.store.embedded import EmbeddedRedis  # noqa: E402
from tests.redis_server import reachable_redis  # noqa: E402

ROUNDS = 300
CHAT_ROUNDS = 60
CHATS = 200
# As many as the inbox takes: whether the first has left it for the worker when the last
# arrives depends on scheduling, and a message past the bound is refused (tested elsewhere).
FLOOD = MAX_QUEUED


def ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return statistics.median(ordered) * 1000, p95 * 1000


async def measure(base_url: str, store: ChatStore, label: str) -> dict[str, Any]:
    settings = load_settings(nemo_api_base=base_url, nemo_token=None, redis_url=None)
    app = build_app(settings, "terminal", store=store)
    conv, out = app.conversation, Recorder()
    chat = 1_000_000 + hash(label) % 1000
    await conv.handle(Inbound(chat, chat, "/start"), out)
    await conv.handle(Inbound(chat, chat, "make a 3 second video of the sea"), out)
    state = await store.load(chat)
    api = app.client.bind(await app.client.anonymous_token(state.client_id or "bench"))
    sid = (await api.create_session("en")).session_id

    raw: list[float] = []
    ours: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await api.credits()
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        await conv.handle(Inbound(chat, chat, "/credits"), out)
        ours.append(time.perf_counter() - started)

    raw_turn: list[float] = []
    our_turn: list[float] = []
    for i in range(CHAT_ROUNDS):
        text = f'add a title "Take {i}"'
        started = time.perf_counter()
        async for _event in api.chat(sid, text):
            pass
        raw_turn.append(time.perf_counter() - started)
        started = time.perf_counter()
        await conv.handle(Inbound(chat, chat, text), out)
        our_turn.append(time.perf_counter() - started)

    # Many chats at once: each asks for its credits.
    chats = [2_000_000 + i for i in range(CHATS)]
    await asyncio.gather(*(conv.handle(Inbound(c, c, "/credits"), Recorder()) for c in chats))
    started = time.perf_counter()
    await asyncio.gather(
        *(conv.handle(Inbound(c, c, "how many credits"), Recorder()) for c in chats)
    )
    parallel = time.perf_counter() - started

    # One chat flooded: every message answered at once, then run one by one in order.
    flood_chat, flood_out = 3_000_000, Recorder()
    await conv.handle(Inbound(flood_chat, flood_chat, "/start"), flood_out)
    mark = len(flood_out.ops)
    started = time.perf_counter()
    await asyncio.gather(
        *(
            conv.handle(Inbound(flood_chat, flood_chat, f'add a title "N{i}"'), flood_out)
            for i in range(FLOOD)
        )
    )
    flood = time.perf_counter() - started
    finals = [o.text for o in flood_out.ops[mark:] if isinstance(o, Stream) and o.final]
    busy = [o for o in flood_out.ops[mark:] if isinstance(o, SendText) and "queued" in o.text]
    order = [int(m.group(1)) for t in finals if (m := re.search(r'"N(\d+)"', t))]
    await conv.aclose()
    await app.client.aclose()
    await app.http.aclose()
    return {
        "label": label,
        "credits": (ms(raw), ms(ours)),
        "turn": (ms(raw_turn), ms(our_turn)),
        "parallel": CHATS / parallel,
        "flood_s": flood,
        "flood_ok": order == list(range(FLOOD)) and len(busy) == FLOOD - 1,
    }


async def run_all(base_url: str, url: str) -> list[dict[str, Any]]:
    # As the bot builds it (bot/app.py): callers wait for a connection rather than fail.
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=64))
    namespace = f"nemobot-bench:{uuid.uuid4().hex[:8]}"
    # The store without REDIS_URL: the server nemobot starts on a unix socket.
    embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="nemobot-bench-")))
    local = Redis(connection_pool=BlockingConnectionPool.from_url(embedded.start()))
    try:
        return [
            await measure(base_url, RedisChatStore(local, namespace), "embedded"),
            await measure(base_url, RedisChatStore(redis, namespace), "redis"),
        ]
    finally:
        await local.aclose()
        embedded.stop()
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    with reachable_redis() as url, simulator_process() as base_url:
        results = asyncio.run(run_all(base_url, url))
    write(results)


def write(results: list[dict[str, Any]]) -> None:
    lines = [
        f"Measured {now()} on {machine()}.",
        "Simulator in its own process on 127.0.0.1 (no artificial delays). Median / p95 ms;",
        f"{ROUNDS} `/credits`, {CHAT_ROUNDS} agent turns (a title edit, streamed) per store.",
        "",
        "| store | `/credits` bare API | via conversation "
        "| agent turn bare API | via conversation |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        (c_raw, c_ours), (t_raw, t_ours) = r["credits"], r["turn"]
        lines.append(
            f"| {r['label']} | {c_raw[0]:.2f} / {c_raw[1]:.2f} | {c_ours[0]:.2f} / {c_ours[1]:.2f}"
            f" | {t_raw[0]:.2f} / {t_raw[1]:.2f} | {t_ours[0]:.2f} / {t_ours[1]:.2f} |"
        )
    lines += ["", f"| store | chats at once: messages/s | one chat, {FLOOD} messages at once |"]
    lines += ["|---|---:|---|"]
    for r in results:
        verdict = "all answered at once, run in order" if r["flood_ok"] else "ORDER BROKEN"
        lines.append(
            f"| {r['label']} | {r['parallel']:,.0f} ({CHATS} chats) | "
            f"{r['flood_s']:.2f} s, {verdict} |"
        )
    lines.append("")
    section = "\n".join(lines)
    write_section("conversation", section)
    print(section)


if __name__ == "__main__":
    main()
