"""The operators' endpoints, over real HTTP, with real checks."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import yaml
from aiohttp import web
from redis.asyncio import Redis

from backend.sim import Simulator
from bot.ops.health import serve_health
from bot.ops.metrics import Metrics, endpoint_label
from bot.store import RedisChatStore
from tests.fake_botapi import FakeBotApi
from tests.redis_server import RedisProcess, free_port
from tests.replica_fixtures import listening, sim_config, start_replica, stop_replicas
from tests.web_fixtures import serving

ROOT = Path(__file__).resolve().parent.parent


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
    metrics = Metrics()
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, event_hooks=metrics.httpx_hooks()) as http,
    ):
        await http.get("/api/credits/balance/simple")
        await http.get("/api/credits/balance/simple")
        await http.get("/api/state/nemo_agent/me/123/latest")
    text = metrics.render().decode()
    assert (
        'nemobot_backend_request_seconds_count{endpoint="GET /api/credits/balance/simple",'
        'outcome="ok"} 2.0' in text
    )
    assert 'endpoint="GET /api/state/nemo_agent/me/:id/latest",outcome="404"} 1.0' in text


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


async def test_the_compose_healthcheck_passes_a_live_bot_and_fails_a_stuck_one(
    redis_url: str,
) -> None:
    """The healthcheck command of docker-compose.yml, run as Docker runs it, against a real
    `nemobot run --webhook` on METRICS_PORT: passes; the same bot frozen (SIGSTOP): fails."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    bot = compose["services"]["bot"]
    kind, python, *args = bot["healthcheck"]["test"]
    assert (kind, python) == ("CMD", "python")
    port = free_port()
    probe = [
        sys.executable,
        *(a.replace(bot["environment"]["METRICS_PORT"], str(port)) for a in args),
    ]
    ns = f"nemobot-test:{uuid.uuid4().hex[:12]}"
    async with FakeBotApi() as api, Simulator(sim_config()) as sim:
        replica = await start_replica(api, sim, redis_url, ns, METRICS_PORT=str(port))
        try:
            await api.wait_for(lambda: listening(port), 60, "the health port")

            async def healthcheck() -> int:
                run = await asyncio.create_subprocess_exec(
                    *probe, stderr=asyncio.subprocess.DEVNULL
                )
                return await asyncio.wait_for(run.wait(), 30)

            assert await healthcheck() == 0
            replica.process.send_signal(signal.SIGSTOP)
            assert await healthcheck() != 0, "a stuck bot is reported unhealthy"
            replica.process.send_signal(signal.SIGCONT)
            assert await healthcheck() == 0
        finally:
            replica.process.send_signal(signal.SIGCONT)
            await stop_replicas([replica])
