"""Every message and every video exactly once, with a real Redis and the simulator: the
faults are made for real (a write held in flight by a proxy, Redis stopped and started
again from its append-only file), never by patching the code under test."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from backend.sim import Simulator
from bot.io import Progress
from bot.store import RedisChatStore
from tests.conversation_fixtures import HarnessFactory, Recorder, harnesses, quick_sim_config
from tests.process_fixtures import ChatCommand, say
from tests.redis_proxy import HoldingProxy
from tests.redis_server import RedisProcess
from tests.waiting import until


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[HoldingProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    held = HoldingProxy(port)
    try:
        yield held
    finally:
        await held.stop()


def rendering(op: object) -> bool:
    return isinstance(op, Progress) and "Rendering" in op.text


async def test_a_control_message_on_another_replica_never_undoes_an_export_record(
    make_harness: HarnessFactory, redis_store: RedisChatStore, proxy: HoldingProxy, namespace: str
) -> None:
    """/lang answered by replica B, whose write is held in flight while replica A records
    the chat's export: once B's write lands, the export is still on record."""
    a = await make_harness()
    await a.say("make a 5 second video of a lake")
    b_redis = Redis.from_url(await proxy.start())
    b_store = RedisChatStore(b_redis, namespace)
    b = await make_harness(sim=a.sim, store=b_store)
    try:
        proxy.hold_next_write()
        lang = b.later("/lang zh")
        await asyncio.wait_for(proxy.holding.wait(), 10)  # B read the chat, its write waits
        export = a.later("/export")

        async def recorded() -> bool:
            return bool((await redis_store.load(a.chat_id)).pending)

        await until(recorded)
        proxy.release()
        await asyncio.wait_for(lang, 10)
        state = await redis_store.load(a.chat_id)
        assert (state.lang, state.lang_locked) == ("zh", True)
        assert len(state.pending) == 1, "the export in flight is still on record"
        assert await redis_store.chats_with_work() == [a.chat_id]
        await asyncio.wait_for(export, 15)
        assert len(a.out.videos()) == 1
    finally:
        await b_redis.aclose()


async def test_cancel_on_another_replica_never_takes_the_chat(
    make_harness: HarnessFactory, proxy: HoldingProxy, namespace: str
) -> None:
    """/cancel on replica B, held just after its first write, while replica A gets the
    chat's next message: A runs it at once; nobody is told to wait behind a job that does
    not exist."""
    a = await make_harness()
    await a.say("/start")
    b_redis = Redis.from_url(await proxy.start())
    b = await make_harness(sim=a.sim, store=RedisChatStore(b_redis, namespace))
    try:
        proxy.hold_next_write(after=1)
        cancel = b.later("/cancel")
        held = asyncio.create_task(proxy.holding.wait())
        await asyncio.wait({cancel, held}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        texts = await asyncio.wait_for(a.say("make a 5 second video of a fjord"), 15)
        proxy.release()
        await asyncio.wait_for(cancel, 10)
        held.cancel()
        assert b.out.texts() == ["Nothing is running right now."]
        assert not [t for t in texts if t.startswith("⏳")], texts
        assert "Generated a 5s clip" in texts[-1]
    finally:
        await b_redis.aclose()


async def test_a_video_is_delivered_once_when_redis_dies_mid_export(
    own_redis: RedisProcess,
) -> None:
    """Redis is killed while a render runs and started again from its append-only file;
    the process that was following the export and the one that resumes it after deliver
    one video between them."""
    store = RedisChatStore.from_url(own_redis.url, "nemobot-once")
    try:
        async with harnesses(store) as factory:
            first = await factory(sim_config=quick_sim_config(render_seconds=1.5))
            await first.say("make a 5 second video of a canyon")
            job = first.later("/export")
            await first.out.wait_for(rendering)
            await until(lambda: first.sim.requests_to("/api/render/proxy/lambda/"))
            own_redis.kill()
            await asyncio.wait_for(job, 30)  # the render completed while Redis was down
            own_redis.start()
            await until(store.ping)
            second = await factory(sim=first.sim, store=store)
            resumed = Recorder()
            await second.conv.resume_pending(lambda _chat: resumed)
            await asyncio.wait_for(second.conv.wait_idle(), 30)
            await asyncio.wait_for(first.conv.wait_idle(), 30)
            videos = first.out.videos() + resumed.videos()
            assert len(videos) == 1, f"{len(videos)} videos delivered"
            assert (await store.load(first.chat_id)).pending == []
    finally:
        await store.aclose()


async def test_a_job_that_lost_its_lock_stops_before_its_next_answer(
    redis_url: str, namespace: str, redis_store: RedisChatStore, tmp_path: Path
) -> None:
    """A bot frozen (SIGSTOP) mid-answer past its lock's TTL, while a second process takes
    the chat over, says nothing more for that job once it runs again (SIGCONT)."""
    chat_id = 4343
    async with Simulator(quick_sim_config()) as sim:
        command = ChatCommand(sim.base_url, redis_url, namespace, tmp_path, chat_id)
        first = await command.start()
        try:
            assert first.stdin is not None
            sim.set_fault("quiet_stream", seconds=4.0, every=0.2)
            await say(first, "make a 5 second video of a volcano")
            await until(lambda: sim.requests_to("/run_sse"))
            first.send_signal(signal.SIGSTOP)

            _, taken_over, _ = await command.run()
            assert "⚠️ I was restarted while working on" in taken_over

            first.send_signal(signal.SIGCONT)
            await asyncio.sleep(5.0)  # the stream's answer arrives meanwhile
            first.stdin.close()
            rest, errors = await asyncio.wait_for(first.communicate(), 30)
        finally:
            if first.returncode is None:
                first.send_signal(signal.SIGCONT)
                first.kill()
                await first.wait()
        assert "Generated a 5s clip" not in rest.decode(), rest.decode()
        assert "Traceback" not in errors.decode()
        assert await redis_store.lock_holder(chat_id) is None


async def test_a_message_that_never_reached_the_backend_runs_after_a_crash(
    redis_url: str, namespace: str, redis_store: RedisChatStore, tmp_path: Path
) -> None:
    """The bot is killed (SIGKILL) while its message waits for a token, before anything
    was asked of the agent: the next process runs it instead of calling it interrupted."""
    chat_id = 4444
    async with Simulator(quick_sim_config()) as sim:
        command = ChatCommand(sim.base_url, redis_url, namespace, tmp_path, chat_id)
        sim.set_fault("slow", seconds=30.0, path="/api/auth/anonymous-token")
        quiet = asyncio.subprocess.DEVNULL
        first = await command.start(stdout=quiet, stderr=quiet)
        try:
            await say(first, "make a 5 second video of a meadow")
            await until(lambda: sim.requests_to("/api/auth/anonymous-token"))
        finally:
            first.kill()
            await first.wait()
        sim.clear_faults()
        code, text, errors = await command.run()
        assert code == 0, errors[-2000:]
        assert "Generated a 5s clip" in text, text
        assert "⚠️" not in text
        assert len(sim.requests_to("/run_sse")) == 1, "the agent got the message once"
