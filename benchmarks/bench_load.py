"""The real bot under load: the unmodified PTB application of `nemobot run`, in a process of
its own, against the fake Bot API server and the NemoVideo simulator (both in this
process) and a throwaway Redis that only the bot uses. Everything is on 127.0.0.1.

Scenarios (targets from issue 7):
1. many chats with an agent stream open at once (the simulator sends only keep-alives
   for `hold` seconds, then answers): the bot's peak RSS (VmHWM), event-loop lag inside
   the bot (bot/looplag.py, read from its /metrics), every answer complete;
2. `/credits` / "credits" from 200 chats with the fake server's limits off: updates/s,
   p50/p99 from delivery (getUpdates hands the update over) to reply, Redis round trips
   per update, with PTB's AIORateLimiter lifted (the bot's own capacity);
3. the same burst with Telegram's limits simulated (429 + retry_after past 30 msg/s, 1 msg/s
   per chat): every reply delivered, total time vs the ideal at 30 msg/s.
Baseline: the fake server's raw capacity, a plain aiohttp loop (another process) sending
the same replies without the bot.
4. fair sending (`--only fair`), each part against a baseline tree in the same run, with
   Telegram's limits on: streams ending at once (last answer vs stream end + N/30, calls
   per answer), new chats at once (median vs last answer, none lost), one chat flooding
   the webhook over 40 connections (call latency, other chats' delay, log lines).

Run: python benchmarks/bench_load.py [--quick] [--profile PATH]   (writes `## load`)
     python benchmarks/bench_load.py --only fair [--streams N --hold S --new-chats N
     --flood N --baseline-ref REF]   (writes `### 4. Fair sending` in `## load`)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from results import RESULTS, machine, now, write_section  # noqa: E402

from backend.sim import SimConfig, Simulator  # noqa: E402
from backend.sim import agent as sim_agent  # noqa: E402
from tests.fake_botapi import BotMessage, FakeBotApi  # noqa: E402
from tests.redis_server import RedisProcess, free_port  # noqa: E402

LAUNCHER = ROOT / "benchmarks" / "load_bot.py"
WEBHOOK_SECRET = "bench-secret"  # a throwaway for the local webhook
CREDITS_MARK = "💳"
HELLO = "hello there"


# ---------------------------------------------------------------------- the Bot API side
class LoadApi(FakeBotApi):
    """The fake server, also noting when each update was handed to the bot."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: dict[int, float] = {}
        self.by_chat: dict[int, list[BotMessage]] = collections.defaultdict(list)
        self.listeners: list[Callable[[BotMessage], None]] = []
        self.on_message = self._seen

    def _seen(self, message: BotMessage) -> None:
        self.by_chat[message.chat_id].append(message)
        for listener in self.listeners:
            listener(message)

    async def _get_updates(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> list[dict[str, Any]]:
        result = await super()._get_updates(params, uploads)
        now = time.monotonic()
        for update in result:
            self.delivered.setdefault(update["update_id"], now)
        return result

    def count_429(self) -> int:
        return sum(1 for c in self.calls if c.error_code == 429)


# ---------------------------------------------------------------------- the bot process
@dataclass
class BotProcess:
    api: FakeBotApi
    sim: Simulator
    redis_url: str
    lift: bool = False
    profile: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)
    log: Any = None
    root: Path = ROOT  # the source tree the bot runs from (another for the baseline)
    webhook_port: int | None = None  # a webhook server on this port instead of polling
    log_level: str = "WARNING"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/hook"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
        env.update(
            TELEGRAM_BOT_TOKEN=self.api.token,
            TELEGRAM_API_BASE=self.api.base_url,
            TELEGRAM_FILE_BASE=self.api.base_file_url,
            NEMO_API_BASE=self.sim.base_url,
            REDIS_URL=self.redis_url,
            METRICS_PORT=str(self.port),
            LOG_LEVEL=self.log_level,
            ALLOW_PRIVATE_DOWNLOADS="true",
            PYTHONPATH=str(self.root),
        )
        env.pop("WEBHOOK_URL", None)
        if self.webhook_port is not None:
            env.update(
                WEBHOOK_URL=self.webhook_url,
                WEBHOOK_LISTEN="127.0.0.1",
                WEBHOOK_PORT=str(self.webhook_port),
                WEBHOOK_SECRET=WEBHOOK_SECRET,
            )
        if self.lift:
            env["BENCH_LIFT_RATE_LIMITER"] = "1"
        if self.profile:
            env["BENCH_PROFILE"] = self.profile
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the bot writes it till it stops
            prefix="nemobot-load-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - its pid and /proc are what we read
            [sys.executable, str(self.root / LAUNCHER.relative_to(ROOT))],
            cwd=str(self.root),
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        polls = len(self.api.calls_of("getUpdates"))
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited at start; log: {self.log.name}")
            if self.webhook_port is not None:
                ready = self.api.webhook_url == self.webhook_url
            else:
                ready = len(self.api.calls_of("getUpdates")) > polls
            if ready and await self.healthy():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start in 30 s; log: {self.log.name}")
            await asyncio.sleep(0.1)

    async def healthy(self) -> bool:
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float, str]]]:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10)
        out: dict[str, list[tuple[dict[str, str], float, str]]] = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out.setdefault(family.name, []).append((s.labels, s.value, s.name))
        return out

    def status(self, key: str) -> int:
        """A VmXXX value of /proc/<pid>/status, in kB."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            await wait_until(lambda: proc.poll() is not None, 30, 0.1)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self.log is not None:
            self.log.close()


def lag_histogram(
    metrics: dict[str, list[tuple[dict[str, str], float, str]]],
) -> dict[float, float]:
    family = metrics.get("nemobot_event_loop_lag_seconds", [])
    return {
        float(labels["le"]): value
        for labels, value, name in family
        if name.endswith("_bucket") and "le" in labels
    }


def quantile_from_buckets(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of the observations between two scrapes, linear inside a bucket."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            inside = count - prev_count
            frac = (rank - prev_count) / inside if inside else 1.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound


def gauge(metrics: dict[str, list[tuple[dict[str, str], float, str]]], name: str) -> float:
    values = [v for _, v, n in metrics.get(name, []) if n == name]
    return values[0] if values else float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_until(probe: Callable[[], bool], limit_s: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + limit_s
    while not probe():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


# ---------------------------------------------------------------------- scenario 1
async def streams(quick: bool, redis_url: str) -> dict[str, Any]:
    chats = 100 if quick else 1000
    hold = 10.0 if quick else 60.0
    every = 2.0 if quick else 5.0
    fresh_redis(redis_url)
    api = LoadApi()
    await api.start()
    sim = Simulator(
        SimConfig(
            no_text_every=0,
            initial_credits=10**9,
            generate_seconds=0.05,
            chunk_delay_s=0.02,
            keepalive_every_s=every,
        )
    )
    await sim.start()
    replies: set[str] = set()
    original = sim_agent.plan_turn

    def recording(*args: Any, **kwargs: Any) -> Any:
        plan = original(*args, **kwargs)
        replies.add(plan.reply)
        return plan

    sim_agent.plan_turn = recording
    result: dict[str, Any] = {"chats": chats, "hold_s": hold, "keepalive_s": every}
    users = [api.user(21_000_001 + i) for i in range(chats)]
    bot = BotProcess(api, sim, redis_url)
    try:
        await bot.start()
        await asyncio.sleep(2)
        idle_before = lag_histogram(await bot.metrics())
        await asyncio.sleep(5)
        idle_after = lag_histogram(await bot.metrics())
        result["idle_lag_p50_ms"] = quantile_from_buckets(idle_before, idle_after, 0.5) * 1e3
        result["idle_lag_p99_ms"] = quantile_from_buckets(idle_before, idle_after, 0.99) * 1e3
        result["rss_idle_mb"] = bot.status("VmRSS") / 1024
        # Warm-up: every chat set up (token, session) before the streams are opened.
        t0 = time.monotonic()
        for user in users:
            api.send_command(user, "start")

        def all_welcomed() -> bool:
            return all(
                any("I make videos with you" in m.text for m in api.by_chat[u.id]) for u in users
            )

        result["warmup_ok"] = await wait_until(all_welcomed, 60 + chats * 0.5, 0.5)
        result["warmup_s"] = time.monotonic() - t0
        result["warmup_error_replies"] = sum(
            sum("something went wrong" in m.text for m in api.by_chat[u.id]) for u in users
        )
        await asyncio.sleep(2)
        marks = {u.id: len(api.by_chat[u.id]) for u in users}
        quiet_harness()
        sim.set_fault("quiet_stream", times=None, seconds=hold, every=every)
        before = lag_histogram(await bot.metrics())
        cpu0 = bot.cpu_s()
        t0 = time.monotonic()
        for user in users:
            api.send_text(user, HELLO)
        pushed_s = time.monotonic() - t0
        peak_open = 0.0
        rss_samples: list[float] = []

        def answered() -> list[int]:
            expected = next(iter(replies)) if len(replies) == 1 else None
            done = []
            for u in users:
                for m in api.by_chat[u.id][marks[u.id] :]:
                    if expected is not None and " ".join(expected.split()) in " ".join(
                        m.text.split()
                    ):
                        done.append(u.id)
                        break
            return done

        deadline = t0 + hold + 60 + chats * 0.2
        first_answer: float | None = None
        finished: list[int] = []
        while time.monotonic() < deadline:
            metrics = await bot.metrics()
            peak_open = max(peak_open, gauge(metrics, "nemobot_streams_open"))
            rss_samples.append(bot.status("VmRSS") / 1024)
            finished = answered()
            if finished and first_answer is None:
                first_answer = time.monotonic() - t0
            if len(finished) == chats:
                break
            await asyncio.sleep(1.0)
        total_s = time.monotonic() - t0
        after = lag_histogram(await bot.metrics())
        metrics = await bot.metrics()
        result.update(
            pushed_s=pushed_s,
            answered=len(finished),
            lost=chats - len(finished),
            first_answer_s=first_answer,
            all_answered_s=total_s if len(finished) == chats else None,
            peak_streams_open=peak_open,
            rss_peak_mb=bot.status("VmHWM") / 1024,
            rss_max_sampled_mb=max(rss_samples) if rss_samples else float("nan"),
            lag_p50_ms=quantile_from_buckets(before, after, 0.5) * 1e3,
            lag_p99_ms=quantile_from_buckets(before, after, 0.99) * 1e3,
            lag_max_ms=gauge(metrics, "nemobot_event_loop_lag_max_seconds") * 1e3,
            lag_samples=after.get(float("inf"), 0) - before.get(float("inf"), 0),
            bot_cpu_s=bot.cpu_s() - cpu0,
            distinct_replies=len(replies),
            backend_errors=_errors(metrics),
            tg_calls=collections.Counter(c.method for c in api.calls),
            tg_429=api.count_429(),
        )
        unanswered = [u.id for u in users if u.id not in set(finished)][:3]
        result["unanswered_sample"] = {
            cid: [m.text[:120] for m in api.by_chat[cid][marks[cid] :]] for cid in unanswered
        }
    finally:
        sim_agent.plan_turn = original
        await bot.stop()
        await sim.stop()
        await api.stop()
    return result


def _errors(metrics: dict[str, list[tuple[dict[str, str], float, str]]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value, name in metrics.get("nemobot_errors", []):
        if name.endswith("_total") and value:
            out[labels.get("kind", "?")] = value
    for labels, value, name in metrics.get("nemobot_backend_request_seconds", []):
        if name.endswith("_count") and labels.get("outcome") != "ok" and value:
            out[f"backend {labels.get('endpoint')} {labels.get('outcome')}"] = value
    return out


# ---------------------------------------------------------------------- scenarios 2 and 3
@dataclass
class Burst:
    api: LoadApi
    users: list[Any]
    pushed: dict[int, float] = field(default_factory=dict)
    queue: dict[int, collections.deque[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    from_delivery: list[float] = field(default_factory=list)
    from_push: list[float] = field(default_factory=list)
    replies: int = 0
    others: int = 0  # anything else the bot said in these chats (error replies)
    other_texts: collections.Counter[str] = field(default_factory=collections.Counter)
    last_reply: float = 0.0

    def __post_init__(self) -> None:
        self.api.listeners.append(self._reply)

    def close(self) -> None:
        self.api.listeners.remove(self._reply)

    def _reply(self, message: BotMessage) -> None:
        if not message.text.startswith(CREDITS_MARK):
            if message.chat_id in self.queue:
                self.others += 1
                self.other_texts[message.text[:40]] += 1
            return
        now = time.monotonic()
        waiting = self.queue.get(message.chat_id)
        if not waiting:
            return
        update_id = waiting.popleft()
        self.replies += 1
        self.last_reply = now
        self.from_push.append(now - self.pushed[update_id])
        delivered = self.api.delivered.get(update_id)
        if delivered is not None:
            self.from_delivery.append(now - delivered)

    def push(self, index: int) -> None:
        user = self.users[index % len(self.users)]
        text = "/credits" if index % 2 == 0 else "credits"
        update = (
            self.api.send_command(user, text)
            if text.startswith("/")
            else self.api.send_text(user, text)
        )
        self.pushed[update["update_id"]] = time.monotonic()
        self.queue[user.id].append(update["update_id"])


def fresh_redis(url: str) -> None:
    """Each scenario starts on an empty Redis: a new fake server numbers its updates from the
    same first id, and the bot would take them for updates it has already answered."""
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


class RedisStats:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def read(self) -> dict[str, int]:
        info = self.client.info("stats")
        return {
            k: int(info.get(k, 0))
            for k in (
                "total_commands_processed",
                "total_reads_processed",
                "total_writes_processed",
                "total_connections_received",
            )
        }


async def warm(api: LoadApi, users: list[Any], limit_s: float) -> bool:
    burst = Burst(api, users)
    for i in range(len(users)):
        burst.push(i)
    ok = await wait_until(lambda: burst.replies >= len(users), limit_s, 0.1)
    burst.close()
    return ok


async def credits_burst(
    api: LoadApi,
    bot: BotProcess,
    users: list[Any],
    count: int,
    stats: RedisStats,
    limit_s: float,
) -> dict[str, Any]:
    quiet_harness()
    burst = Burst(api, users)
    before = stats.read()
    cpu0 = bot.cpu_s()
    t0 = time.monotonic()
    for i in range(count):
        burst.push(i)
    done = await wait_until(lambda: burst.replies + burst.others >= count, limit_s, 0.02)
    elapsed = (burst.last_reply or time.monotonic()) - t0
    await asyncio.sleep(0.5)
    after = stats.read()
    burst.close()
    delta = {
        k: after[k] - before[k] - (1 if k != "total_connections_received" else 0) for k in after
    }
    return {
        "updates": count,
        "replied": burst.replies,
        "other_replies": burst.others,
        "other_texts": dict(burst.other_texts.most_common(3)),
        "complete": done,
        "elapsed_s": elapsed,
        "per_s": burst.replies / elapsed if elapsed > 0 else float("nan"),
        "deliv_p50_ms": pct(burst.from_delivery, 0.5) * 1e3,
        "deliv_p99_ms": pct(burst.from_delivery, 0.99) * 1e3,
        "push_p50_ms": pct(burst.from_push, 0.5) * 1e3,
        "push_p99_ms": pct(burst.from_push, 0.99) * 1e3,
        "redis_cmds_per_update": delta["total_commands_processed"] / count,
        "redis_reads_per_update": delta["total_reads_processed"] / count,
        "redis_writes_per_update": delta["total_writes_processed"] / count,
        "redis_new_connections": delta["total_connections_received"],
        "bot_cpu_ms_per_update": (bot.cpu_s() - cpu0) / count * 1e3,
    }


def quiet_harness() -> None:
    """The fake server and the simulator share this process, whose heap (every call and
    message recorded) grows over a run: freeze it, so that a full collection here, tens of
    milliseconds by now, does not stall the replies and get counted against the bot."""
    gc.collect()
    gc.freeze()


def gc_pauses(
    metrics: dict[str, list[tuple[dict[str, str], float, str]]],
) -> dict[str, float]:
    """The bot's collections so far: count and total seconds, full (gen 2) and all."""
    out = {"count": 0.0, "sum": 0.0, "full_count": 0.0, "full_sum": 0.0}
    for labels, value, name in metrics.get("nemobot_gc_pause_seconds", []):
        for suffix in ("count", "sum"):
            if name.endswith("_" + suffix):
                out[suffix] += value
                if labels.get("generation") == "2":
                    out["full_" + suffix] += value
    return out


async def credits_paced(
    api: LoadApi, bot: BotProcess, users: list[Any], rate: float, count: int, limit_s: float
) -> dict[str, Any]:
    quiet_harness()
    before = await bot.metrics()
    burst = Burst(api, users)
    t0 = time.monotonic()
    for i in range(count):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0.002:
            await asyncio.sleep(delay)
        burst.push(i)
    done = await wait_until(lambda: burst.replies >= count, limit_s, 0.02)
    burst.close()
    after = await bot.metrics()
    gc0, gc1 = gc_pauses(before), gc_pauses(after)
    lag0, lag1 = lag_histogram(before), lag_histogram(after)
    return {
        "bot_gc": {k: gc1[k] - gc0[k] for k in gc1},
        "bot_lag_p99_ms": quantile_from_buckets(lag0, lag1, 0.99) * 1e3,
        "rate": rate,
        "updates": count,
        "replied": burst.replies,
        "other_replies": burst.others,
        "complete": done,
        "push_p50_ms": pct(burst.from_push, 0.5) * 1e3,
        "push_p99_ms": pct(burst.from_push, 0.99) * 1e3,
        "deliv_p50_ms": pct(burst.from_delivery, 0.5) * 1e3,
        "deliv_p99_ms": pct(burst.from_delivery, 0.99) * 1e3,
    }


BASELINE = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, count, chats, concurrency):
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as s:
        async def one(i):
            async with sem:
                body = {"chat_id": 30_000_001 + i % chats, "text": "💳 Credits: 100 available",
                        "disable_web_page_preview": True}
                async with s.post(url + "/sendMessage", json=body) as r:
                    await r.read()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        print(count / (time.perf_counter() - t0))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""


async def raw_capacity(api: FakeBotApi, count: int) -> float:
    url = f"{api.base_url}{api.token}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BASELINE,
        url,
        str(count),
        "200",
        "64",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return float(out.decode().strip())


async def direct(quick: bool, redis_url: str, profile: str | None) -> dict[str, Any]:
    chats = 200
    count = 1000 if quick else 10_000
    paced = 600 if quick else 3000
    limited_count = 300 if quick else 10_000
    fresh_redis(redis_url)
    api = LoadApi()
    await api.start()
    sim = Simulator(SimConfig(no_text_every=0, initial_credits=10**9))
    await sim.start()
    stats = RedisStats(redis_url)
    users = [api.user(30_000_001 + i) for i in range(chats)]
    result: dict[str, Any] = {"chats": chats}
    try:
        result["raw_per_s"] = await raw_capacity(api, count)
        # The bot's own capacity: AIORateLimiter lifted, fake server unlimited.
        bot = BotProcess(api, sim, redis_url, lift=True, profile=profile)
        try:
            await bot.start()
            result["warm_ok"] = await warm(api, users, 120)
            result["burst"] = await credits_burst(api, bot, users, count, stats, 60 + count / 20)
            result["paced"] = await credits_paced(api, bot, users, 300.0, paced, 120)
            result["paced_low"] = await credits_paced(api, bot, users, 100.0, paced // 3, 60)
            result["rss_mb"] = bot.status("VmHWM") / 1024
        finally:
            await bot.stop()
        print("limiter lifted:", result["burst"], result["paced"], result["paced_low"], flush=True)
        # Against Telegram's limits: the bot with its AIORateLimiter (30 msg/s).
        api.telegram_limits(per_second=30, chat_interval_s=1.0, retry_after=1)
        calls0 = api.count_429()
        bot = BotProcess(api, sim, redis_url)
        try:
            await bot.start()
            limited = await credits_burst(
                api, bot, users, limited_count, stats, limited_count / 30 * 2 + 60
            )
            limited["ideal_s"] = limited_count / 30
            limited["ratio"] = limited["elapsed_s"] / limited["ideal_s"]
            limited["flood_429"] = api.count_429() - calls0
            result["limited"] = limited
        finally:
            await bot.stop()
            api.clear_limits()
        print("telegram limits:", result["limited"], flush=True)
    finally:
        stats.client.close()
        await sim.stop()
        await api.stop()
    return result


# ---------------------------------------------------------------------- fair sending, A/B
# The three load scenarios of the send scheduler, each run against this tree and against
# a baseline tree (`--baseline-ref`, by default the commit before the scheduler, whose Bot
# API calls go through PTB's AIORateLimiter), in the same run, on the fake Bot API server
# with Telegram's limits on (30 sends in any second, one a second per chat, 429 beyond).
BASELINE_REF = "a73ef64"
SENDS = ("sendMessage", "editMessageText", "sendVideo")


@dataclass(frozen=True)
class Variant:
    name: str
    root: Path


def baseline_tree(ref: str) -> Path:
    """The baseline's sources in a temporary directory (`git archive`)."""
    dest = Path(tempfile.mkdtemp(prefix="nemobot-baseline-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def limited_api() -> LoadApi:
    api = LoadApi()
    api.telegram_limits(per_second=30, chat_interval_s=1.0, retry_after=1)
    return api


def reply_recorder() -> tuple[set[str], Callable[[], None]]:
    """The agent replies the simulator plans (to recognise an answer), and an undo."""
    replies: set[str] = set()
    original = sim_agent.plan_turn

    def recording(*args: Any, **kwargs: Any) -> Any:
        plan = original(*args, **kwargs)
        replies.add(" ".join(plan.reply.split()))
        return plan

    sim_agent.plan_turn = recording

    def undo() -> None:
        sim_agent.plan_turn = original

    return replies, undo


def has_reply(api: LoadApi, chat_id: int, mark: int, replies: set[str]) -> bool:
    for message in api.by_chat[chat_id][mark:]:
        text = " ".join(message.text.split())
        if any(reply and reply in text for reply in replies):
            return True
    return False


async def watch_answers(
    api: LoadApi,
    chats: list[int],
    marks: dict[int, int],
    replies: set[str],
    t0: float,
    limit_s: float,
) -> dict[int, float]:
    """Seconds after `t0` at which each chat showed its answer (sampled every 0.2 s)."""
    answered: dict[int, float] = {}
    deadline = t0 + limit_s
    while len(answered) < len(chats) and time.monotonic() < deadline:
        now = time.monotonic() - t0
        for chat_id in chats:
            if chat_id not in answered and has_reply(api, chat_id, marks[chat_id], replies):
                answered[chat_id] = now
        await asyncio.sleep(0.2)
    return answered


def per_chat_429s(api: LoadApi, since: int) -> int:
    """429s for a chat sent to less than a second before (the rest: the global limit)."""
    last: dict[int, float] = {}
    count = 0
    for call in api.calls[since:]:
        chat_id = call.chat_id
        if chat_id is None or call.method not in SENDS:
            continue
        if call.error_code == 429 and call.at - last.get(chat_id, float("-inf")) < 1.0:
            count += 1
        elif call.ok:
            last[chat_id] = call.at
    return count


def sends_in(api: LoadApi, since: int, chats: set[int]) -> collections.Counter[str]:
    return collections.Counter(
        c.method for c in api.calls[since:] if c.chat_id is not None and c.chat_id in chats
    )


async def fair_streams(variant: Variant, chats: int, hold: float, redis_url: str) -> dict[str, Any]:
    """Every chat set up, then one message each whose answer streams after `hold` s."""
    fresh_redis(redis_url)
    api = await limited_api().start()
    sim = Simulator(
        SimConfig(
            no_text_every=0,
            initial_credits=10**9,
            generate_seconds=0.05,
            chunk_delay_s=0.02,
            keepalive_every_s=5.0,
        )
    )
    await sim.start()
    replies, undo = reply_recorder()
    users = [api.user(22_000_001 + i) for i in range(chats)]
    ids = [u.id for u in users]
    bot = BotProcess(api, sim, redis_url, root=variant.root)
    try:
        await bot.start()
        for user in users:
            api.send_command(user, "start")
        welcomed = await wait_until(
            lambda: all(any("I make videos" in m.text for m in api.by_chat[i]) for i in ids),
            120 + chats * 0.5,
            0.5,
        )
        await asyncio.sleep(2)
        replies.clear()
        marks = {i: len(api.by_chat[i]) for i in ids}
        since = len(api.calls)
        quiet_harness()
        sim.set_fault("quiet_stream", times=None, seconds=hold, every=5.0)
        t0 = time.monotonic()
        for user in users:
            api.send_text(user, HELLO)
        answered = await watch_answers(api, ids, marks, replies, t0, hold + 120 + chats * 0.3)
        calls = sends_in(api, since, set(ids))
    finally:
        undo()
        await bot.stop()
        await sim.stop()
        await api.stop()
    times = sorted(answered.values())
    ideal = hold + chats / 30
    shown = sum(calls.get(m, 0) for m in SENDS)
    return {
        "variant": variant.name,
        "chats": chats,
        "hold_s": hold,
        "welcomed": welcomed,
        "answered": len(answered),
        "first_s": times[0] if times else None,
        "last_s": times[-1] if times else None,
        "ideal_s": ideal,
        "ratio": times[-1] / ideal if times else None,
        "message_calls": shown,
        "calls_per_answer": shown / len(answered) if answered else None,
        "typing_calls": calls.get("sendChatAction", 0),
        "tg_429": sum(1 for c in api.calls[since:] if c.error_code == 429),
    }


async def fair_new_chats(variant: Variant, chats: int, redis_url: str) -> dict[str, Any]:
    """`chats` chats never seen before send one message each, all at once."""
    fresh_redis(redis_url)
    api = await limited_api().start()
    sim = Simulator(SimConfig(no_text_every=0, initial_credits=10**9, chunk_delay_s=0.02))
    await sim.start()
    replies, undo = reply_recorder()
    users = [api.user(23_000_001 + i) for i in range(chats)]
    ids = [u.id for u in users]
    bot = BotProcess(api, sim, redis_url, root=variant.root)
    try:
        await bot.start()
        since = len(api.calls)
        quiet_harness()
        t0 = time.monotonic()
        for user in users:
            api.send_text(user, HELLO)
        marks = dict.fromkeys(ids, 0)
        answered = await watch_answers(api, ids, marks, replies, t0, 120 + chats * 0.4)
        first_seen = [min(m.created_at for m in api.by_chat[i]) - t0 for i in ids if api.by_chat[i]]
        calls = sends_in(api, since, set(ids))
        lost = {i: [m.text[:80] for m in api.by_chat[i]] for i in ids if i not in answered}
    finally:
        undo()
        await bot.stop()
        await sim.stop()
        await api.stop()
    times = sorted(answered.values())
    total = times[-1] if times else None
    median = times[len(times) // 2] if times else None
    return {
        "variant": variant.name,
        "chats": chats,
        "answered": len(answered),
        "lost": chats - len(answered),
        "median_s": median,
        "total_s": total,
        "median_ratio": median / total if median and total else None,
        "first_sign_median_s": sorted(first_seen)[len(first_seen) // 2] if first_seen else None,
        "lost_sample": dict(list(lost.items())[:3]),
        "tg_429_per_chat": per_chat_429s(api, since),
        "message_calls": sum(calls.get(m, 0) for m in SENDS),
        "typing_calls": calls.get("sendChatAction", 0),
        "tg_429": sum(1 for c in api.calls[since:] if c.error_code == 429),
    }


class Credits:
    """Other chats asking for their credits every two seconds, each answer timed (every
    second would make each answer wait for the chat's own pace of one message a second)."""

    def __init__(self, api: LoadApi, post: Callable[[dict[str, Any]], Any], users: list[Any]):
        self.api = api
        self.post = post
        self.users = users
        self.asked: dict[int, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.latencies: list[float] = []
        self.posting: set[asyncio.Task[None]] = set()
        api.listeners.append(self._seen)

    def _seen(self, message: BotMessage) -> None:
        waiting = self.asked.get(message.chat_id)
        if waiting and message.text.startswith(CREDITS_MARK):
            self.latencies.append(time.monotonic() - waiting.popleft())

    def unanswered(self) -> int:
        return sum(len(waiting) for waiting in self.asked.values())

    async def run(self, seconds: float) -> list[float]:
        self.latencies = []
        self.asked.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for user in self.users:
                self.asked[user.id].append(time.monotonic())
                task = asyncio.create_task(self.post(self.api.text_update(user, "/credits")))
                self.posting.add(task)
                task.add_done_callback(self.posting.discard)
            await asyncio.sleep(2.0)
        await wait_until(lambda: not self.unanswered(), 30, 0.1)
        return list(self.latencies)

    def close(self) -> None:
        self.api.listeners.remove(self._seen)


async def fair_flood(variant: Variant, flood: int, redis_url: str) -> dict[str, Any]:
    """One chat posts `flood` messages over 40 connections to the webhook while 10 other
    chats ask for their credits every 2 s; the bot logs at INFO, as in production."""
    import aiohttp

    fresh_redis(redis_url)
    api = await limited_api().start()
    sim = Simulator(SimConfig(no_text_every=0, initial_credits=10**9, chunk_delay_s=0.02))
    await sim.start()
    flooder = api.user(24_000_001)
    others = [api.user(24_100_001 + i) for i in range(10)]
    bot = BotProcess(api, sim, redis_url, root=variant.root, webhook_port=free_port())
    bot.log_level = "INFO"
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=40)
    session = aiohttp.ClientSession(connector=connector)
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    statuses: collections.Counter[int] = collections.Counter()

    connections = asyncio.Semaphore(40)  # Telegram's most calls in flight to one webhook

    async def post(update: dict[str, Any], via: aiohttp.ClientSession = session) -> None:
        async with connections if via is session else contextlib.nullcontext():
            started = time.monotonic()  # the call's own time, not its wait for a connection
            async with via.post(bot.webhook_url, json=update, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
            if via is session:
                latencies.append(time.monotonic() - started)

    # Other users' updates reach the bot over connections of their own.
    others_session = aiohttp.ClientSession()

    async def post_other(update: dict[str, Any]) -> None:
        await post(update, others_session)

    credits = Credits(api, post_other, others)
    try:
        await bot.start()
        for user in [flooder, *others]:
            await post(api.text_update(user, "/start"))
        everyone = [u.id for u in [flooder, *others]]
        await wait_until(
            lambda: all(any("I make videos" in m.text for m in api.by_chat[i]) for i in everyone),
            60,
            0.2,
        )
        await asyncio.sleep(2)  # past the welcomes, so the chats' own pace does not show
        quiet = await credits.run(10)
        mark = len(api.by_chat[flooder.id])
        since = len(api.calls)
        log_mark = os.path.getsize(bot.log.name)  # noqa: ASYNC240 - a local file
        latencies.clear()
        quiet_harness()

        async def flood_it() -> None:
            await asyncio.gather(
                *(post(api.text_update(flooder, f"hello {i}")) for i in range(flood))
            )

        flooding = asyncio.create_task(flood_it())
        loaded = await credits.run(10)
        others_unanswered = credits.unanswered()
        await flooding
        flood_latencies = list(latencies)
        await asyncio.sleep(15)  # the burst's notice and its log line
        with open(bot.log.name, "rb") as log_file:  # noqa: ASYNC230 - a small local file
            logged = log_file.read()[log_mark:].splitlines()
        theirs = [f"{u.id}".encode() for u in others]
        lines = sum(1 for line in logged if not any(t in line for t in theirs))
        said = [m.text for m in api.by_chat[flooder.id][mark:]]
    finally:
        credits.close()
        await session.close()
        await others_session.close()
        await bot.stop()
        await sim.stop()
        await api.stop()
    return {
        "variant": variant.name,
        "flood": flood,
        "webhook_p50_ms": pct(flood_latencies, 0.5) * 1e3,
        "webhook_p99_ms": pct(flood_latencies, 0.99) * 1e3,
        "webhook_max_ms": max(flood_latencies) * 1e3 if flood_latencies else float("nan"),
        "statuses": dict(statuses),
        "others_quiet_p50_ms": pct(quiet, 0.5) * 1e3,
        "others_quiet_p99_ms": pct(quiet, 0.99) * 1e3,
        "others_flood_p50_ms": pct(loaded, 0.5) * 1e3,
        "others_flood_p99_ms": pct(loaded, 0.99) * 1e3,
        "others_delay_p99_ms": (pct(loaded, 0.99) - pct(quiet, 0.99)) * 1e3,
        "others_unanswered": others_unanswered,
        "log_lines": lines,  # all but the other chats' own (one per message, as always)
        "log_lines_all": len(logged),
        "flooder_refusal_messages": sum("already waiting" in t for t in said),
        "flooder_messages": len(said),
        "tg_429": sum(1 for c in api.calls[since:] if c.error_code == 429),
    }


async def fair(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    variants = [
        Variant(f"baseline ({args.baseline_ref})", baseline_tree(args.baseline_ref)),
        Variant("this tree", ROOT),
    ]
    out: dict[str, Any] = {"streams": [], "new_chats": [], "flood": []}
    for variant in variants:
        if args.streams:
            result = await fair_streams(variant, args.streams, args.hold, redis_url)
            print(result, flush=True)
            out["streams"].append(result)
        if args.new_chats:
            result = await fair_new_chats(variant, args.new_chats, redis_url)
            print(result, flush=True)
            out["new_chats"].append(result)
        if args.flood:
            result = await fair_flood(variant, args.flood, redis_url)
            print(result, flush=True)
            out["flood"].append(result)
    return out


def render_fair(results: dict[str, Any], note: str = "") -> str:
    def cell(value: Any, fmt: str = "{:.1f}") -> str:
        return "—" if value is None or value != value else fmt.format(value)

    lines = [
        "### 4. Fair sending: the send scheduler against today's limiter",
        "",
        f"Measured {now()} on {machine()}, in one run: each scenario against the baseline "
        "tree (PTB's AIORateLimiter, 30 requests/s first come first served) and this tree "
        "(bot/telegram/sending.py), the fake Bot API server enforcing Telegram's limits (30 "
        "sends in any second, one a second per chat, 429 with retry_after past them). "
        "`python benchmarks/bench_load.py --only fair [--streams N --hold S --new-chats N "
        "--flood N]`.",
        "",
    ]
    if note:
        lines += [note, ""]
    if results.get("streams"):
        first = results["streams"][0]
        lines += [
            f"**{first['chats']:,} chats, answers streaming after {first['hold_s']:.0f} s** "
            f"(ideal: stream end + N / 30 = {first['ideal_s']:.1f} s)",
            "",
            "| | answered | first answer − stream end | last answer | ÷ ideal (≤ 1.15) | "
            "message calls per answer (≤ 2) | typing calls | 429s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["streams"]:
            first_after = r["first_s"] - r["hold_s"] if r["first_s"] is not None else None
            lines.append(
                f"| {r['variant']} | {r['answered']:,} / {r['chats']:,} | "
                f"{cell(first_after)} s | {cell(r['last_s'])} s | {cell(r['ratio'], '{:.3f}')} | "
                f"{cell(r['calls_per_answer'], '{:.2f}')} | {r['typing_calls']:,} | "
                f"{r['tg_429']:,} |"
            )
        lines.append("")
    if results.get("new_chats"):
        first = results["new_chats"][0]
        lines += [
            f"**{first['chats']:,} new chats, one message each, at once**",
            "",
            "| | answered (none lost) | median answered | last answered | median ÷ last "
            "(< 0.5) | median first message | message calls | typing calls | 429s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["new_chats"]:
            lines.append(
                f"| {r['variant']} | {r['answered']:,} / {r['chats']:,} | "
                f"{cell(r['median_s'])} s | {cell(r['total_s'])} s | "
                f"{cell(r['median_ratio'], '{:.3f}')} | {cell(r['first_sign_median_s'])} s | "
                f"{r['message_calls']:,} | {r['typing_calls']:,} | {r['tg_429']:,} |"
            )
        lines.append("")
    if results.get("flood"):
        first = results["flood"][0]
        lines += [
            f"**One chat posts {first['flood']:,} messages over 40 connections to the "
            "webhook** while 10 other chats ask `/credits` every 2 s; the bot logs at INFO "
            "(log lines: from the flood's start to 15 s after its last call, but the other "
            "chats' own). Other chats' delay: p99 of their answer time during the flood minus "
            "p99 in the 10 s before it.",
            "",
            "| | webhook p50 / p99 / max (p99 ≤ 100 ms) | other chats p99 quiet → flood "
            "(delay ≤ 1 s) | log lines (≤ 100) | refusal messages to the flooder | 429s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in results["flood"]:
            lines.append(
                f"| {r['variant']} | {r['webhook_p50_ms']:.0f} / {r['webhook_p99_ms']:.0f} / "
                f"{r['webhook_max_ms']:.0f} ms | {r['others_quiet_p99_ms']:.0f} → "
                f"{r['others_flood_p99_ms']:.0f} ms ({r['others_delay_p99_ms']:+.0f} ms"
                f"{_unanswered(r['others_unanswered'])}) | "
                f"{r['log_lines']:,} | {r['flooder_refusal_messages']:,} | {r['tg_429']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def _unanswered(count: int) -> str:
    return f", {count} unanswered after 30 s" if count else ""


def write_subsection(section: str, heading: str, body: str) -> None:
    """Replace (or add) the `### <heading>…` block of the `## <section>` of RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        write_section(section, body)
        return
    part = match.group(0)
    block = re.compile(rf"^### {re.escape(heading)}.*?(?=^### |\Z)", re.M | re.S)
    if block.search(part):
        part = block.sub(lambda _: body.strip() + "\n\n", part, count=1)
    else:
        part = part.rstrip() + "\n\n" + body.strip() + "\n\n"
    RESULTS.write_text(text[: match.start()] + part + text[match.end() :], encoding="utf-8")


# ---------------------------------------------------------------------- report
def ok(value: float, target: float, higher: bool = False) -> str:
    if value != value:  # NaN
        return "—"
    return "✅" if (value >= target if higher else value <= target) else "❌"


def render(quick: bool, s1: dict[str, Any], s2: dict[str, Any], note: str = "") -> str:
    burst, paced, low, limited = s2["burst"], s2["paced"], s2["paced_low"], s2["limited"]
    lines = [
        f"Measured {now()}{' (--quick)' if quick else ''} on {machine()}. The bot is "
        "`nemobot run` (its PTB application, long polling) in its own process; the fake Bot "
        "API server and the simulator share the benchmark process; a throwaway Redis serves "
        "only the bot. All traffic on 127.0.0.1. `python benchmarks/bench_load.py [--quick]`.",
        "",
        "The bot's limits on concurrency, as configured: the chat store on a blocking Redis "
        "pool of 64 connections (`REDIS_MAX_CONNECTIONS`; callers wait for a connection), the "
        "NemoVideo client allows 1,000 connections (`BACKEND_MAX_CONNECTIONS`; aiohttp's pool "
        "under httpx, idle ones closed after 5 s), PTB's Bot API requests 32 connections "
        "(aiohttp, pool timeout 30 s), and control messages (`/credits`, `/status`, buttons, "
        "the same asked in words) pass a first-come first-served gate of 64 at once; agent "
        "jobs are not gated. The process runs on asyncio's own loop, with what is alive after "
        "start-up frozen for the collector (`bot/ops/runtime.py`). The benchmark freezes its own "
        "heap before each measured phase, so that its collections do not stall the fake server.",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        f"### 1. {s1['chats']:,} chats with an agent stream open at once",
        "",
        f"Each chat was set up first (`/start` from every chat at once: token, session; "
        f"{s1['warmup_s']:.0f} s, {s1['warmup_error_replies']:,} error replies), then sent one "
        f"message; the simulator held every stream open {s1['hold_s']:.0f} s with a keep-alive "
        f"every {s1['keepalive_s']:.0f} s, then answered. Lag: a task in the bot sleeps 50 ms "
        "and records how late it wakes (`nemobot_event_loop_lag_seconds`, p50/p99 "
        "interpolated inside histogram buckets).",
        "",
        "| measure | bot under load | idle bot (baseline) | target |",
        "|---|---:|---:|---:|",
        f"| peak RSS (VmHWM) | {s1['rss_peak_mb']:.0f} MB | {s1['rss_idle_mb']:.0f} MB | "
        f"≤ 300 MB {ok(s1['rss_peak_mb'], 300)} |",
        f"| event-loop lag p50 | {s1['lag_p50_ms']:.1f} ms | {s1['idle_lag_p50_ms']:.1f} ms | |",
        f"| event-loop lag p99 | {s1['lag_p99_ms']:.1f} ms | {s1['idle_lag_p99_ms']:.1f} ms | "
        f"≤ 100 ms {ok(s1['lag_p99_ms'], 100)} |",
        f"| event-loop lag max | {s1['lag_max_ms']:.0f} ms | | |",
        f"| streams open at once (peak of `nemobot_streams_open`) | "
        f"{s1['peak_streams_open']:.0f} | | {s1['chats']:,} |",
        f"| answers arrived complete | {s1['answered']:,} / {s1['chats']:,} | | "
        f"0 lost {ok(s1['lost'], 0)} |",
        f"| first / last answer after the messages | {_s(s1['first_answer_s'])} / "
        f"{_s(s1['all_answered_s'])} | | |",
        f"| bot CPU during the run | {s1['bot_cpu_s']:.1f} s | | |",
        "",
        _stream_calls(s1),
        "",
    ]
    if s1["backend_errors"]:
        lines += [f"Errors counted by the bot: {s1['backend_errors']}.", ""]
    lines += [
        f'### 2. Direct intents: `/credits` and "credits" from {s2["chats"]} chats',
        "",
        "Every chat set up first (one `/credits` each), the fake server's limits off, PTB's "
        'AIORateLimiter lifted (to measure the bot, not the limiter). Latency "from delivery" '
        "runs from the moment the fake server hands the update to the bot (getUpdates returns "
        'it) to the moment the reply reaches the server; "from push" also counts the wait in '
        "the server's queue. Redis: the bot's own throwaway server, `INFO stats` deltas over "
        "the burst; `total_reads_processed` counts the request batches the server read (a "
        "pipeline arriving at once is one read): the round trips. **raw** = a plain aiohttp "
        "loop in another process sending the same replies to the fake server (64 in flight): "
        "what the fake server can take.",
        "",
        "| measure | bot | raw | target |",
        "|---|---:|---:|---:|",
        f"| burst size | {burst['updates']:,} | {burst['updates']:,} | |",
        f"| updates/s | {burst['per_s']:,.0f} | {s2['raw_per_s']:,.0f} | ≥ 300 "
        f"{ok(burst['per_s'], 300, True)} |",
        f"| ÷ raw server capacity | {burst['per_s'] / s2['raw_per_s']:.3f} | 1 | |",
        f"| credit replies / error replies | {burst['replied']:,} / {burst['other_replies']:,} "
        "| | all / 0 |",
        f"| delivery → reply p50 / p99, burst | {_ms(burst['deliv_p50_ms'])} / "
        f"{_ms(burst['deliv_p99_ms'])} | | |",
        f"| push → reply p50 / p99 at a steady {paced['rate']:.0f} updates/s "
        f"({paced['updates']:,}) | {_ms(paced['push_p50_ms'])} / {_ms(paced['push_p99_ms'])}"
        f" | | p99 ≤ 50 ms {ok(paced['push_p99_ms'], 50)} |",
        f"| push → reply p50 / p99 at a steady {low['rate']:.0f} updates/s "
        f"({low['updates']:,}) | {_ms(low['push_p50_ms'])} / {_ms(low['push_p99_ms'])}"
        f" | | p99 ≤ 50 ms {ok(low['push_p99_ms'], 50)} |",
        f"| Redis round trips (reads) per update | {burst['redis_reads_per_update']:.2f} | | "
        f"≤ 2 {ok(burst['redis_reads_per_update'], 2.005)} |",
        f"| Redis commands per update | {burst['redis_cmds_per_update']:.2f} | | |",
        f"| bot CPU per update, burst | {burst['bot_cpu_ms_per_update']:.1f} ms | | |",
        f"| bot event-loop lag p99 / full collections (longest total) at a steady "
        f"{paced['rate']:.0f}/s | {paced['bot_lag_p99_ms']:.1f} ms / "
        f"{paced['bot_gc']['full_count']:.0f} ({paced['bot_gc']['full_sum'] * 1e3:.0f} ms) | | |",
        f"| bot peak RSS | {s2['rss_mb']:.0f} MB | | |",
        "",
        f"### 3. The same burst against Telegram's limits ({limited['updates']:,} updates)",
        "",
        "The fake server answers 429 with `retry_after` past 30 messages in any second (all "
        "chats together) or a second message to one chat within 1 s. The bot as it is, with "
        "its AIORateLimiter (at most 30 requests/s).",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| replies delivered | {limited['replied']:,} / {limited['updates']:,} | all "
        f"{ok(limited['updates'] - limited['replied'], 0)} |",
        f"| total time / ideal at 30 msg/s | {limited['elapsed_s']:.1f} s / "
        f"{limited['ideal_s']:.1f} s = {limited['ratio']:.3f} | ≤ 1.10 "
        f"{ok(limited['ratio'], 1.10)} |",
        f"| 429 answers the server gave | {limited['flood_429']:,} | |",
        f"| delivery → reply p50 / p99 | {limited['deliv_p50_ms'] / 1e3:.1f} / "
        f"{limited['deliv_p99_ms'] / 1e3:.1f} s | |",
        "",
    ]
    lines += _findings(s2)
    return "\n".join(lines)


def _findings(s2: dict[str, Any]) -> list[str]:
    burst, low, limited = s2["burst"], s2["paced_low"], s2["limited"]
    return [
        "### What limits the bot",
        "",
        f"- **Its own capacity**: {burst['per_s']:,.0f} updates/s on one core "
        f"({burst['bot_cpu_ms_per_update']:.1f} ms CPU per update in a burst: the credits "
        "call, the reply, two Redis round trips, PTB's parsing of the update and of the "
        "reply). At a steady rate long polling returns smaller batches, so each update "
        "carries more of a getUpdates call; at a steady "
        f"{low['rate']:.0f} updates/s p99 is {_ms(low['push_p99_ms'])}. Either way it is "
        "several times Telegram's 30 msg/s ceiling, so the bot is not what limits delivery.",
        "- **Telegram's limit**: the bot's AIORateLimiter is a leaky bucket that lets 30 "
        "requests through at once and then 30/s, which overshoots a strict 30-per-second "
        f"window: {limited['flood_429']:,} 429s here, each costing the message a 1 s wait "
        f"(total {limited['ratio']:.2f}× the ideal). Typing actions go through the same "
        "budget.",
        "",
    ]


def _stream_calls(s1: dict[str, Any]) -> str:
    calls = s1["tg_calls"]
    sends = sum(calls.get(m, 0) for m in ("sendMessage", "editMessageText", "sendChatAction"))
    return (
        f"The answers come {_s(s1['first_answer_s'])} to {_s(s1['all_answered_s'])} after the "
        f"messages although the streams end after {s1['hold_s']:.0f} s: every Bot API call of "
        f"the run ({calls.get('sendMessage', 0):,} sendMessage, "
        f"{calls.get('editMessageText', 0):,} editMessageText, "
        f"{calls.get('sendChatAction', 0):,} sendChatAction, {sends:,} in all, the set-up "
        "included) passes PTB's AIORateLimiter at 30/s; the typing actions repeated while a "
        "stream is open spend that budget too."
    )


def _ms(value: float) -> str:
    if value != value:
        return "—"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1e3:.1f} s"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def print_profile(path: str) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


async def run(args: argparse.Namespace) -> int:
    server = RedisProcess().start()
    try:
        s1: dict[str, Any] = {}
        s2: dict[str, Any] = {}
        if args.only in (None, "streams"):
            s1 = await streams(args.quick, server.url)
            print({k: v for k, v in s1.items() if k != "tg_calls"}, flush=True)
            print("telegram calls:", dict(s1["tg_calls"]), flush=True)
        if args.only in (None, "direct"):
            s2 = await direct(args.quick, server.url, args.profile)
            print(s2, flush=True)
        if args.only == "fair":
            s4 = await fair(args, server.url)
    finally:
        server.stop()
    if args.only == "fair":
        if args.save:
            Path(args.save).write_text(json.dumps(s4, default=str))  # noqa: ASYNC240
        section = render_fair(s4, args.note)
        write_subsection("load", "4. Fair sending", section)
        print(section)
        return 0
    if args.profile:
        print_profile(args.profile)
    if args.save:
        Path(args.save).write_text(json.dumps({"s1": s1, "s2": s2}, default=str))  # noqa: ASYNC240
    if s1 and s2:
        section = render(args.quick, s1, s2, args.note)
        if not args.quick:  # a sanity run never replaces the measured numbers
            write_section("load", section)
        print(section)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast sanity run")
    parser.add_argument("--only", choices=("streams", "direct", "fair"), default=None)
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="fair: the tree to compare")
    parser.add_argument("--streams", type=int, default=1000, help="fair: chats streaming")
    parser.add_argument("--hold", type=float, default=60.0, help="fair: seconds of stream")
    parser.add_argument("--new-chats", type=int, default=5000, help="fair: new chats at once")
    parser.add_argument("--flood", type=int, default=1000, help="fair: messages of the flood")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the bot of scenario 2")
    parser.add_argument("--save", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument("--render", metavar="PATH", help="only render results saved earlier")
    parser.add_argument("--note", default="", help="a paragraph for the section (conditions)")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        section = render(args.quick, saved["s1"], saved["s2"], args.note)
        write_section("load", section)
        print(section)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
