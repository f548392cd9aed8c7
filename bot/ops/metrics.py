"""Prometheus metrics for operators: one registry per process, passed to who records."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Path segments that carry ids become `:id`, so each endpoint is one label value.
_ID_SEGMENT = re.compile(r"/(?=[^/]*\d)[^/]+")
_START = "nemobot_started_at"


def endpoint_label(method: str, path: str) -> str:
    return f"{method} {_ID_SEGMENT.sub('/:id', path)}"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.updates = Counter(
            "nemobot_updates", "Messages handled, by intent.", ["intent"], registry=self.registry
        )
        self.backend = Histogram(
            "nemobot_backend_request_seconds",
            "NemoVideo API calls by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.streams_open = Gauge(
            "nemobot_streams_open", "Agent answers streaming now.", registry=self.registry
        )
        self.exports_pending = Gauge(
            "nemobot_exports_pending", "Exports being rendered now.", registry=self.registry
        )
        self.exports = Counter(
            "nemobot_exports", "Finished exports by outcome.", ["outcome"], registry=self.registry
        )
        self.telegram_429 = Counter(
            "nemobot_telegram_429",
            "Bot API calls Telegram refused with 429 (each waited its retry_after).",
            registry=self.registry,
        )
        self.errors = Counter(
            "nemobot_errors", "Errors answered to users, by kind.", ["kind"], registry=self.registry
        )

    def httpx_hooks(self) -> dict[str, list[Any]]:
        """Event hooks that time every backend request (streams: until the headers arrive)."""

        async def on_request(request: httpx.Request) -> None:
            request.extensions[_START] = time.perf_counter()

        async def on_response(response: httpx.Response) -> None:
            request = response.request
            started = request.extensions.get(_START)
            if started is None:
                return
            outcome = "ok" if response.status_code < 400 else str(response.status_code)
            label = endpoint_label(request.method, request.url.path)
            self.backend.labels(label, outcome).observe(time.perf_counter() - started)

        return {"request": [on_request], "response": [on_response]}

    def render(self) -> bytes:
        return generate_latest(self.registry)
