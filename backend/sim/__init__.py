"""A local, stateful simulator of the NemoVideo API, for tests and offline trials."""

from __future__ import annotations

from backend.sim.config import SimConfig
from backend.sim.faults import FAULT_DEFAULTS, FAULT_NAMES, Fault, Faults, UnknownFault
from backend.sim.server import ATTRIBUTION_HEADERS, RecordedRequest, Simulator, sample_mp4

__all__ = [
    "ATTRIBUTION_HEADERS",
    "FAULT_DEFAULTS",
    "FAULT_NAMES",
    "Fault",
    "Faults",
    "RecordedRequest",
    "SimConfig",
    "Simulator",
    "UnknownFault",
    "sample_mp4",
]
