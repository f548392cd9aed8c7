"""`/healthz`, `/readyz` and `/metrics` on a small HTTP server for operators."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.ops.metrics import Metrics

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
# Probes time out after about a second: a check slower than this counts as "not ready",
# and the answer is always in before the probe gives up.
CHECK_TIMEOUT_S = 0.8


async def _bounded(name: str, check: Check, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            return await check()
    except TimeoutError:
        log.warning("readiness check timed out", extra={"check": name, "timeout_s": timeout_s})
    except Exception as exc:  # a check that fails in any way means "not ready"
        log.warning("readiness check failed", extra={"check": name, "error": type(exc).__name__})
    return False


def health_app(
    metrics: Metrics, checks: dict[str, Check], timeout_s: float = CHECK_TIMEOUT_S
) -> web.Application:
    """Liveness always answers; readiness runs every check (e.g. Redis, the backend) at
    once, each within `timeout_s`."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        names = list(checks)
        answers = await asyncio.gather(*(_bounded(n, checks[n], timeout_s) for n in names))
        results = dict(zip(names, answers, strict=True))
        ready = all(results.values())
        return web.json_response({"ok": ready, "checks": results}, status=200 if ready else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def serve_health(
    metrics: Metrics,
    checks: dict[str, Check],
    host: str,
    port: int,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> web.AppRunner:
    runner = web.AppRunner(health_app(metrics, checks, timeout_s), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
