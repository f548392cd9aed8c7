"""Event-loop lag: how late a task that asked to sleep a fixed interval wakes up.

Everything the bot does shares one event loop, so a slow callback (a big JSON parse, a
blocking call) delays every chat at once. A small task sleeps `interval` seconds again and
again and records the overshoot into a Prometheus histogram, which operators (and the load
benchmark) read from `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from prometheus_client import CollectorRegistry, Gauge, Histogram

__all__ = ["LAG_BUCKETS", "LoopLagMonitor", "register_lag_metrics"]

# Fine at the low end, where a healthy loop lives, so p50/p99 can be read from buckets.
LAG_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def register_lag_metrics(registry: CollectorRegistry) -> tuple[Histogram, Gauge]:
    """The lag histogram and the worst lag seen, registered on the process's registry."""
    histogram = Histogram(
        "nemobot_event_loop_lag_seconds",
        "How late the event loop woke a task that slept a fixed interval.",
        buckets=LAG_BUCKETS,
        registry=registry,
    )
    worst = Gauge(
        "nemobot_event_loop_lag_max_seconds",
        "The largest event-loop lag seen since start.",
        registry=registry,
    )
    return histogram, worst


class LoopLagMonitor:
    """Sleeps `interval` seconds in a loop and records how late each wake-up was."""

    def __init__(
        self,
        histogram: Histogram | None = None,
        worst: Gauge | None = None,
        *,
        interval: float = 0.05,
        keep: int = 10_000,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=keep)  # the latest lags, for tests and tools
        self.max_lag = 0.0
        self._histogram = histogram
        self._worst = worst
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start measuring on the running loop (once; later calls do nothing)."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def record(self, lag: float) -> None:
        lag = max(lag, 0.0)
        self.samples.append(lag)
        if lag > self.max_lag:
            self.max_lag = lag
            if self._worst is not None:
                self._worst.set(lag)
        if self._histogram is not None:
            self._histogram.observe(lag)

    async def _run(self) -> None:
        interval = self.interval
        while True:
            due = time.perf_counter() + interval
            await asyncio.sleep(interval)
            self.record(time.perf_counter() - due)
