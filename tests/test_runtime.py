"""The bot process's event loop and collector settings, and the GC pause metric."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from bot.ops.runtime import GcPauses, freeze_startup_objects


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_start_up_objects_are_frozen(unfreeze: None) -> None:
    freeze_startup_objects()
    assert gc.get_freeze_count() > 1000


def test_gc_pauses_are_timed_by_generation() -> None:
    registry = CollectorRegistry()
    before = list(gc.callbacks)
    pauses = GcPauses(registry)
    pauses.install()
    pauses.install()  # once only
    try:
        assert len(gc.callbacks) == len(before) + 1
        gc.collect(0)
        gc.collect()
    finally:
        gc.callbacks[:] = before
    gc.collect()

    def count(gen: int) -> float:
        value = registry.get_sample_value(
            "nemobot_gc_pause_seconds_count", {"generation": str(gen)}
        )
        return value or 0.0

    assert count(2) == 1, "one full collection while installed, none after"
    assert count(0) >= 1
    total = registry.get_sample_value("nemobot_gc_pause_seconds_sum", {"generation": "2"})
    assert total is not None and 0 < total < 5
