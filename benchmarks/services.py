"""What the conversation benchmarks run against: the simulator in a process of its own and
an outbox that keeps what it is sent.

Import after the benchmark has put the repository on sys.path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.io import Outbound

ROOT = Path(__file__).resolve().parents[1]

# No artificial delays and credits without end: what is measured is ours, not the fake's.
SIM = r"""
import asyncio
from backend.sim import SimConfig, Simulator

async def main():
    sim = Simulator(SimConfig(chunk_delay_s=0, edit_seconds=0, generate_seconds=0,
                              no_text_every=0, keepalive_every_s=60, initial_credits=10**9))
    print(await sim.start(), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@contextmanager
def simulator_process() -> Iterator[str]:
    """The simulator in its own process, so it takes no time from the one measured;
    yields its base URL."""
    sim = subprocess.Popen([sys.executable, "-c", SIM], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert sim.stdout is not None
        yield sim.stdout.readline().strip()
    finally:
        sim.terminate()
        sim.wait(10)


class Recorder:
    """A chat's front end that only keeps what it is sent, as a real one keeps its answer."""

    def __init__(self) -> None:
        self.ops: list[Outbound] = []

    async def send(self, op: Outbound) -> None:
        self.ops.append(op)
