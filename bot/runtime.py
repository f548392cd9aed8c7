"""Process settings of the long-running bot: its event loop and its garbage collector.

Both were measured under the load benchmark (benchmarks/RESULTS.md, "load"): uvloop takes
a share off every network call, and with the collector's defaults a full collection
over the objects alive at start-up (the libraries, their classes) stalled the loop for
tens of milliseconds several times a minute, which is what set the reply-time p99.
"""

from __future__ import annotations

import asyncio
import gc

# Young collections 20x rarer than the default 700 allocations: most objects of an
# update are freed by reference counting, so collecting them often buys nothing.
_GC_THRESHOLDS = (15_000, 20, 100)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where uvloop is installed (Linux, macOS), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not exist there
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def tune_gc() -> None:
    gc.set_threshold(*_GC_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Once started: everything alive now lives as long as the process, so the collector
    stops walking it (a full collection then costs what the traffic allocated)."""
    gc.collect()
    gc.freeze()
