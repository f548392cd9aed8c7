"""`nemobot run` as shipped, started by bench_load.py as a process of its own.

Two switches, both off unless the benchmark asks:
- BENCH_LIFT_RATE_LIMITER=1 lifts the 30 msg/s of PTB's AIORateLimiter (everything else
  unchanged), to measure what the bot's own code can do;
- BENCH_REDIS_POOL=<n> gives the chat store a blocking pool of n connections (callers wait
  for a free connection) instead of redis-py's default pool, which raises
  `MaxConnectionsError` past 100 connections: the fix this benchmark proposes, measured;
- BENCH_TG_POOL=<n> caps PTB's Bot API connection pool at n connections (PTB's default is
  256; httpcore's pool does O(connections²) work on every request start and end);
- BENCH_MAX_HANDLERS=<n> lets at most n messages be handled at once (the others wait their
  turn, first come first served) instead of one task per update without bound;
- BENCH_BACKEND_POOL=<n> lets the NemoVideo client keep n connections open (the shipped
  client allows 100, so the 101st open agent stream waits for a free connection);
- BENCH_PROFILE=<path> runs the bot under cProfile and writes the stats there on exit.
"""

from __future__ import annotations

import cProfile
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _lift_rate_limiter() -> None:
    from telegram.ext import AIORateLimiter

    original = AIORateLimiter.__init__

    def lifted(self: AIORateLimiter, *args: Any, **kwargs: Any) -> None:
        kwargs["overall_max_rate"] = 0
        kwargs["group_max_rate"] = 0
        original(self, **kwargs)

    AIORateLimiter.__init__ = lifted  # type: ignore[method-assign]


def _blocking_redis_pool(size: int) -> None:
    from redis.asyncio import BlockingConnectionPool, Redis

    import bot.app

    class _Redis:
        @staticmethod
        def from_url(url: str, **kwargs: Any) -> Redis:
            pool = BlockingConnectionPool.from_url(url, max_connections=size, timeout=10, **kwargs)
            return Redis(connection_pool=pool)

    bot.app.Redis = _Redis  # type: ignore[attr-defined,assignment]


def _telegram_pool(size: int) -> None:
    from telegram.request import HTTPXRequest

    original = HTTPXRequest.__init__

    def sized(self: HTTPXRequest, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("connection_pool_size", 256) > size:
            kwargs["connection_pool_size"] = size
            kwargs["pool_timeout"] = 30.0  # PTB's default of 1 s fails requests that queue
        original(self, *args, **kwargs)

    HTTPXRequest.__init__ = sized  # type: ignore[method-assign]


def _bounded_handlers(size: int) -> None:
    import asyncio

    from bot.telegram.front import TelegramFront

    original = TelegramFront._run
    gates: dict[int, asyncio.Semaphore] = {}

    async def bounded(self: TelegramFront, msg: Any, lang: str | None) -> None:
        gate = gates.setdefault(id(self), asyncio.Semaphore(size))
        async with gate:
            await original(self, msg, lang)

    TelegramFront._run = bounded  # type: ignore[method-assign]


def _backend_pool(size: int) -> None:
    import types

    import httpx

    import bot.app

    names = {name: getattr(httpx, name) for name in dir(httpx) if not name.startswith("__")}
    proxy = types.SimpleNamespace(**names)
    proxy.Limits = lambda **_: httpx.Limits(max_connections=size, max_keepalive_connections=size)
    bot.app.httpx = proxy  # type: ignore[attr-defined,assignment]


def main() -> int:
    if os.environ.get("BENCH_LIFT_RATE_LIMITER") == "1":
        _lift_rate_limiter()
    handlers = os.environ.get("BENCH_MAX_HANDLERS")
    if handlers:
        _bounded_handlers(int(handlers))
    backend_pool = os.environ.get("BENCH_BACKEND_POOL")
    if backend_pool:
        _backend_pool(int(backend_pool))
    tg_pool = os.environ.get("BENCH_TG_POOL")
    if tg_pool:
        _telegram_pool(int(tg_pool))
    pool = os.environ.get("BENCH_REDIS_POOL")
    if pool:
        _blocking_redis_pool(int(pool))
    from bot.cli import main as cli_main

    profile_path = os.environ.get("BENCH_PROFILE")
    if not profile_path:
        return cli_main(["run"])
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return cli_main(["run"])
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


if __name__ == "__main__":
    sys.exit(main())
