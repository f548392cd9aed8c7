"""`/healthz`, `/readyz` and `/metrics` on a small HTTP server for operators."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.ops.metrics import Metrics

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]


def health_app(metrics: Metrics, checks: dict[str, Check]) -> web.Application:
    """Liveness always answers; readiness runs every check (e.g. Redis, the backend)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await check()
            except Exception:  # a check that fails in any way means "not ready"
                log.warning("readiness check failed", extra={"check": name}, exc_info=True)
                results[name] = False
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
    metrics: Metrics, checks: dict[str, Check], host: str, port: int
) -> web.AppRunner:
    runner = web.AppRunner(health_app(metrics, checks), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
