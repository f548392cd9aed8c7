"""`nemobot run`, started by bench_load.py as a process of its own.

Two switches, both off unless the benchmark asks:
- BENCH_LIFT_RATE_LIMITER=1 lifts the send scheduler's limits (and those of PTB's
  AIORateLimiter, which older trees use), everything else unchanged, to measure what the
  bot's own code can do;
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

    from bot.telegram import sending

    scheduler_init = sending.SendScheduler.__init__

    def unlimited(self: sending.SendScheduler, *args: Any, **kwargs: Any) -> None:
        scheduler_init(self, sending.SendLimits.unlimited(), on_429=kwargs.get("on_429"))

    sending.SendScheduler.__init__ = unlimited  # type: ignore[method-assign]

    original = AIORateLimiter.__init__

    def lifted(self: AIORateLimiter, *args: Any, **kwargs: Any) -> None:
        kwargs["overall_max_rate"] = 0
        kwargs["group_max_rate"] = 0
        original(self, **kwargs)

    AIORateLimiter.__init__ = lifted  # type: ignore[method-assign]


def main() -> int:
    if os.environ.get("BENCH_LIFT_RATE_LIMITER") == "1":
        _lift_rate_limiter()
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
