"""The long-running bot's garbage collector: frozen after start-up, and its pauses timed.

Measured under the load benchmark (benchmarks/RESULTS.md, "load"): freezing what is alive
once the bot has started keeps full collections short. Raising the collector's thresholds
made the tail worse: rarer collections each walk more objects, so each pause is longer.
The event loop is asyncio's own: uvloop measured 0.99x the throughput at the same CPU.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from bot.ops.looplag import LAG_BUCKETS


def freeze_startup_objects() -> None:
    """Once started: everything alive now lives as long as the process, so the collector
    stops walking it (a full collection then costs what the traffic allocated)."""
    gc.collect()
    gc.freeze()


class GcPauses:
    """Times every collection (`nemobot_gc_pause_seconds`, by generation): a pause stops
    every chat at once, so it is the first suspect when the reply-time tail grows."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            "nemobot_gc_pause_seconds",
            "How long each garbage collection stopped the process, by generation.",
            ["generation"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._by_generation = [self._histogram.labels(str(g)) for g in range(3)]
        self._started = 0.0

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)
