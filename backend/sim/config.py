"""Knobs of the simulator: quick, deterministic defaults an offline trial and the tests share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MIB = 1024 * 1024

RenderShape = Literal["A", "B", "C"]
KeepAliveStyle = Literal["mixed", "heartbeat", "empty", "comment"]
ErrorStyle = Literal["http", "ok"]


@dataclass
class SimConfig:
    """Everything tunable; mutable so a test can flip a field on a running simulator.

    `render_shape` picks which of the three documented render answer shapes is served, and
    `error_style` whether business errors (1002, 2001, 4001, 4002) come with a matching 4xx
    status ("http": 404, 403, 415, 413) or inside an HTTP 200 envelope ("ok"): the docs
    leave both open. Edit turn n of a session closes without text when
    `(n + seed) % no_text_every == 0` (0 disables). Generation costs `generate_cost` credits
    and runs `generate_seconds` inside the stream, with a keep-alive every
    `keepalive_every_s`; an export freezes `export_cost` until the render ends.
    """

    seed: int = 7
    render_seconds: float = 3.0
    render_pending_s: float = 0.3
    token_ttl_s: float = 7 * 86400
    initial_credits: int = 100
    generate_cost: int = 10
    export_cost: int = 0
    chunk_delay_s: float = 0.02
    chunk_words: int = 3
    keepalive_every_s: float = 15.0
    keepalive_style: KeepAliveStyle = "mixed"
    generate_seconds: float = 0.3
    edit_seconds: float = 0.02
    no_text_every: int = 3
    image_bytes: int = 20 * MIB
    video_bytes: int = 500 * MIB
    audio_bytes: int = 100 * MIB
    operator_token: str | None = None
    operator_credits: int = 25000
    render_shape: RenderShape = "A"
    error_style: ErrorStyle = "http"
    public_base_url: str | None = None
    claim_ttl_s: int = 604800
    request_log_size: int = 1000
