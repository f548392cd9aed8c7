"""The /status picture: how long drawing it takes, and what it costs the event loop when it
is drawn in a thread (as the bot does) against drawn inline, in the same run.

Run: python benchmarks/bench_timeline.py   (writes the `## timeline picture` section)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results import machine, now, write_section  # noqa: E402

from bot.telegram.pictures import timeline_png  # noqa: E402
from bot.timeline import Timeline, timeline_of  # noqa: E402


def draft(tracks: int, segments: int) -> dict[str, Any]:
    kinds = (0, 1, 7)
    return {
        "m": {"width": 1080, "height": 1920},
        "t": [
            {
                "tt": kinds[i % 3],
                "sg": [
                    {"st": j * 4000, "d": 4000, "m": {"title": f"片段 clip {i}-{j} 城市夜景"}}
                    for j in range(segments)
                ],
            }
            for i in range(tracks)
        ],
    }


def timings(timeline: Timeline, runs: int = 30) -> list[float]:
    timeline_png(timeline, "zh")  # fonts and code warm
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        timeline_png(timeline, "zh")
        out.append((time.perf_counter() - started) * 1000)
    return out


async def worst_loop_stall(timeline: Timeline, threaded: bool, pictures: int = 10) -> float:
    """The longest a 1 ms ticker waited past its time while `pictures` were drawn."""
    worst = 0.0
    running = True

    async def ticker() -> None:
        nonlocal worst
        while running:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, (time.perf_counter() - started) * 1000 - 1)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    for _ in range(pictures):
        if threaded:
            await asyncio.to_thread(timeline_png, timeline, "zh")
        else:
            timeline_png(timeline, "zh")
            await asyncio.sleep(0)
    running = False
    await task
    return worst


def main() -> None:
    rows = []
    for tracks, segments in ((3, 2), (8, 6), (20, 15)):
        timeline = timeline_of(draft(tracks, segments))
        ms = timings(timeline)
        inline = asyncio.run(worst_loop_stall(timeline, threaded=False))
        threaded = asyncio.run(worst_loop_stall(timeline, threaded=True))
        rows.append(
            f"| {tracks} × {segments} | {statistics.median(ms):.1f} | {max(ms):.1f} "
            f"| {inline:.1f} | {threaded:.1f} | {inline / max(threaded, 0.01):.0f}× |"
        )
        print(rows[-1])
    body = f"""Measured {now()} on {machine()}.
Drawing one timeline picture (PNG, Chinese names, Noto Sans CJK), 30 runs after a warm-up;
then the longest stall of a 1 ms event-loop ticker while 10 pictures are drawn inline
against in a worker thread (`asyncio.to_thread`, as the bot does).

| tracks × segments | median ms | max ms | loop stall, inline ms | threaded ms | ratio |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
"""
    write_section("timeline picture", body)


if __name__ == "__main__":
    main()
