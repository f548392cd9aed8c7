"""The operators' endpoints, over real HTTP, with real checks."""

from __future__ import annotations

import asyncio
import time

import httpx
from aiohttp import web
from redis.asyncio import Redis

from bot.ops.health import serve_health
from bot.ops.metrics import Metrics, endpoint_label
from bot.store import RedisChatStore
from tests.redis_server import RedisProcess, free_port


def test_endpoint_label_folds_ids() -> None:
    assert endpoint_label("GET", "/api/state/nemo_agent/me/5529798706024415232/latest") == (
        "GET /api/state/nemo_agent/me/:id/latest"
    )
    assert endpoint_label("GET", "/api/render/proxy/lambda/render_1a2b") == (
        "GET /api/render/proxy/lambda/:id"
    )
    assert endpoint_label("POST", "/run_sse") == "POST /run_sse"


async def test_health_ready_and_metrics(redis_store: RedisChatStore) -> None:
    metrics = Metrics()
    down = RedisChatStore.from_url("redis://127.0.0.1:1/0")
    port = free_port()
    runner = await serve_health(
        metrics, {"redis": redis_store.ping, "other_redis": down.ping}, "127.0.0.1", port
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"ok": True}
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"redis": True, "other_redis": False}
            metrics.updates.labels("credits").inc()
            metrics.errors.labels("OutOfCredits").inc(2)
            text = (await http.get("/metrics")).text
            assert 'nemobot_updates_total{intent="credits"} 1.0' in text
            assert 'nemobot_errors_total{kind="OutOfCredits"} 2.0' in text
    finally:
        await runner.cleanup()
        await down.aclose()


async def test_httpx_hooks_time_backend_calls() -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"code": 0})

    async def missing(_: web.Request) -> web.Response:
        return web.json_response({"code": 1002}, status=404)

    app = web.Application()
    app.router.add_get("/api/credits/balance/simple", ok)
    app.router.add_get("/api/state/nemo_agent/me/{sid}/latest", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    metrics = Metrics()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", event_hooks=metrics.httpx_hooks()
        ) as http:
            await http.get("/api/credits/balance/simple")
            await http.get("/api/credits/balance/simple")
            await http.get("/api/state/nemo_agent/me/123/latest")
        text = metrics.render().decode()
        assert (
            'nemobot_backend_request_seconds_count{endpoint="GET /api/credits/balance/simple",'
            'outcome="ok"} 2.0' in text
        )
        assert 'endpoint="GET /api/state/nemo_agent/me/:id/latest",outcome="404"} 1.0' in text
    finally:
        await runner.cleanup()


async def test_backend_reachability_for_readiness() -> None:
    from backend import ClientConfig, build_client
    from backend.sim import Simulator

    async with Simulator() as sim:
        up = build_client(ClientConfig(base_url=sim.base_url))
        assert await up.reachable()
        await up.aclose()
    down = build_client(ClientConfig(base_url=f"http://127.0.0.1:{free_port()}"))
    assert not await down.reachable(wait_s=2)
    await down.aclose()


async def test_readyz_answers_at_once_when_redis_is_paused() -> None:
    """A paused Redis takes connections and never answers: the probe still gets its answer
    (not ready) within the second probes usually wait."""
    server = RedisProcess().start()
    store = RedisChatStore.from_url(server.url)
    admin = Redis.from_url(server.url)
    port = free_port()
    runner = await serve_health(Metrics(), {"redis": store.ping}, "127.0.0.1", port)
    try:
        assert await store.ping()
        # Paused for a few seconds: even CLIENT UNPAUSE would wait for the pause to end.
        await admin.execute_command("CLIENT", "PAUSE", 4_000, "ALL")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1.0) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"redis": False}
            assert (await http.get("/healthz")).status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as http:
            deadline = time.monotonic() + 15
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "ready again once Redis answers"
                await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()
        await store.aclose()
        await admin.aclose()
        server.stop()
