"""The event-loop lag monitor: quiet on an idle loop, loud when a callback blocks it."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bot.ops.looplag import LoopLagMonitor, register_lag_metrics
from bot.ops.metrics import Metrics


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def test_idle_loop_shows_little_lag() -> None:
    registry = CollectorRegistry()
    monitor = LoopLagMonitor(*register_lag_metrics(registry), interval=0.01)
    monitor.start()
    await asyncio.sleep(0.3)
    await monitor.stop()
    assert len(monitor.samples) >= 10
    assert sorted(monitor.samples)[len(monitor.samples) // 2] < 0.02
    assert _sample(registry, "nemobot_event_loop_lag_seconds_count") == len(monitor.samples)


async def test_a_blocked_loop_is_detected_and_exported() -> None:
    metrics = Metrics()
    monitor = LoopLagMonitor(*register_lag_metrics(metrics.registry), interval=0.01)
    monitor.start()
    await asyncio.sleep(0.05)
    time.sleep(0.25)  # a blocking call on the event loop: every task waits for it
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert monitor.max_lag >= 0.2
    assert max(monitor.samples) >= 0.2
    registry = metrics.registry
    assert _sample(registry, "nemobot_event_loop_lag_max_seconds") >= 0.2
    below = _sample(registry, "nemobot_event_loop_lag_seconds_bucket", {"le": "0.15"})
    assert _sample(registry, "nemobot_event_loop_lag_seconds_count") - below >= 1
    assert b"nemobot_event_loop_lag_seconds_bucket" in metrics.render()
    assert b"nemobot_event_loop_lag_seconds_bucket" in generate_latest(registry)


async def test_start_is_idempotent_and_stop_ends_the_task() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    monitor.start()
    assert monitor.running
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert not monitor.running
    count = len(monitor.samples)
    await asyncio.sleep(0.05)
    assert len(monitor.samples) == count
    await monitor.stop()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopLagMonitor(interval=0)
