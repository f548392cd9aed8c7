"""Faults the bot must survive, one test each: the user gets a clear reply and no stored
state is lost. Faults already covered elsewhere are not repeated here (file::test):

- backend down at start: test_conversation_errors::test_backend_errors_and_outage
  (and test_terminal::test_unreachable_api_says_so_in_one_line)
- 5xx bursts: test_conversation_errors::test_backend_errors_and_outage
- 429: test_conversation_errors::test_rate_limited_twice and
  ::test_rate_limited_once_is_retried_quietly
- session loss mid-chat: test_conversation_errors::test_lost_session_is_replaced_and_the_user_told
- stream cut mid-way: test_conversation_errors::test_broken_stream_is_not_resent_and_state_reported
- render fails: test_conversation_errors::test_render_failure
- render past the deadline (slow render): test_conversation_jobs::
  test_export_past_the_deadline_is_cancelled_server_side
- the Telegram bot (`nemobot run --webhook`) killed mid-export: test_replicas::
  test_three_replicas_lose_nothing_when_one_dies; killed while holding an update it has not
  stored: test_replicas_webhook; killed between its first and second write for an update:
  test_replicas_dedupe; stopped by SIGTERM with jobs in flight: test_shutdown
- Redis stalled (SIGSTOP) past REDIS_TIMEOUT_S: test_replicas_stall; Redis killed mid-export
  and restarted from its append-only file, and the bot frozen past its lock's TTL:
  test_exactly_once
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import pytest

from backend.sim import Simulator, sample_mp4
from bot.app import build_store
from bot.io import Progress
from bot.settings import load_settings
from bot.store import ChatStore, RedisChatStore
from tests.conversation_fixtures import HarnessFactory, assert_clean, harnesses, quick_sim_config
from tests.process_fixtures import ChatCommand, read_until, say
from tests.redis_server import RedisProcess
from tests.waiting import until

UNAVAILABLE = "📡 The video service can't be reached right now. Please try again in a few minutes."


async def test_backend_down_mid_stream_then_back(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    before = await h.state()
    h.sim.set_fault("quiet_stream", seconds=30, every=0.05)
    mark = len(h.out.ops)
    job = h.later("make a 5 second video of a volcano")
    await until(lambda: h.sim.requests_to("/run_sse"))  # the stream is open and quiet
    port = int(h.sim.base_url.rsplit(":", 1)[1])
    await h.sim.stop()
    await asyncio.wait_for(job, 10)
    texts = h.out.texts(mark)
    assert texts[-1] == UNAVAILABLE, texts
    assert_clean(texts)
    assert len(h.sim.requests_to("/run_sse")) == 1, "a message is never re-sent"
    after = await h.state()
    assert (after.session_id, after.token) == (before.session_id, before.token)
    # The service comes back: the same project carries on.
    await h.sim.start(port=port)
    h.sim.clear_faults()
    texts = await h.say("make a 5 second video of a volcano")
    assert "Generated a 5s clip" in texts[-1]
    assert (await h.state()).session_id == before.session_id


async def test_backend_down_mid_render_is_said_once_and_the_video_still_arrives(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness(export_poll_interval_s=0.05)
    h.sim.config.render_seconds = 2.0
    await h.say("make a 5 second video of a volcano")
    mark = len(h.out.ops)
    caplog.set_level(logging.INFO, logger="bot.conversation")
    job = h.later("/export")
    await until(lambda: h.out.progress(mark))
    port = int(h.sim.base_url.rsplit(":", 1)[1])
    await h.sim.stop()
    waiting = "the video service isn't answering, still trying"
    await until(lambda: any(waiting in p.text for p in h.out.progress(mark)), timeout=10)
    await h.sim.start(port=port)
    await asyncio.wait_for(job, 30)
    assert h.out.videos(mark), "the render ran on; its video arrives once the service is back"
    lines = [p.text for p in h.out.progress(mark)]
    assert lines[-1].startswith("✅ Rendered"), lines
    outage = [r for r in caplog.records if "export status unavailable" in r.getMessage()]
    assert len(outage) == 1, "one outage, one log line"
    assert any("answered again" in r.getMessage() for r in caplog.records)


async def test_token_expiry_mid_export(make_harness: HarnessFactory) -> None:
    h = await make_harness(sim_config=quick_sim_config(render_seconds=1.5))
    await h.say("make a 5 second video of a lighthouse")
    old = await h.token()
    mark = len(h.out.ops)
    job = h.later("/export")
    await h.out.wait_for(lambda op: isinstance(op, Progress) and "Rendering" in op.text, start=mark)
    await until(lambda: h.sim.requests_to("/api/render/proxy/lambda/"))
    h.sim.expire_token(old)
    await asyncio.wait_for(job, 15)
    videos = h.out.videos(mark)
    assert len(videos) == 1 and videos[0].caption == "Here's your video 🎉"
    assert not [t for t in h.out.texts(mark) if "🔑" in t or "📡" in t]
    state = await h.state()
    assert state.token and state.token != old, "the renewed token is stored"
    assert state.pending == []


async def test_malformed_events_are_skipped(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("malformed_events")
    texts = await h.say("make a 5 second video of a waterfall")
    assert "Generated a 5s clip" in texts[-1]
    assert len(texts) == 1, texts
    assert_clean(texts)
    assert (await h.state()).last_draft, "the draft the stream announced is kept"


async def test_render_that_never_finishes_is_cancelled_at_the_deadline(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(export_deadline_s=0.8)
    await h.say("make a 5 second video of a glacier")
    h.sim.set_fault("render_never_finishes", progress=60)
    mark = len(h.out.ops)
    texts = await asyncio.wait_for(h.say("/export"), 10)
    assert texts == [
        "⌛ The render took longer than 0.8 s, so I stopped it on the server. "
        "Please try /export again later."
    ]
    assert [p.text for p in h.out.progress(mark)][-1] == "⌛ Render took too long"
    (render,) = h.sim.world.renders.values()
    assert render.snapshot()[0] == "cancelled", "the job is cancelled server-side"
    assert (await h.state()).pending == []
    assert not h.out.videos(mark)


# --- Redis stopped and restarted --------------------------------------------------------


async def test_redis_stopped_and_restarted_while_the_bot_runs(
    own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(redis_url=own_redis.url, redis_namespace="nemobot-faults")
    store: ChatStore = build_store(settings)
    try:
        async with harnesses(store) as factory:
            h = await factory(store=store)
            await h.say("/start")
            await h.say("make a 5 second video of a forest")
            saved = await h.state()
            assert saved.session_id and saved.token and saved.last_draft

            own_redis.stop()
            mark = len(h.out.ops)
            caplog.clear()
            caplog.set_level(logging.INFO)
            texts = await asyncio.wait_for(h.say("/credits"), 30)
            texts += await asyncio.wait_for(h.say("make it longer"), 30)
            assert len(texts) == 2, texts
            for text in texts:
                assert text.startswith("🧠 I can't reach my memory right now"), text
            assert_clean(h.out.texts(mark))
            # An outage is expected: a warning line per failure, never an ERROR or traceback.
            outage = [r for r in caplog.records if "store unavailable" in r.getMessage()]
            assert outage and all(r.levelno == logging.WARNING for r in outage)
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
            assert not h.sim.requests_to("/run_sse")[1:], "nothing runs without the chat's state"

            own_redis.start()
            texts = await asyncio.wait_for(h.say("/credits"), 30)
            assert texts[0].startswith("💳 Credits:"), texts
            state = await h.state()
            assert state.session_id == saved.session_id, "the stored chat survived the restart"
            assert state.token == saved.token and state.last_draft == saved.last_draft
            assert await store.ping()
    finally:
        await store.aclose()


# --- the bot killed with an export in flight --------------------------------------------


async def test_bot_killed_with_an_export_in_flight(
    redis_url: str, namespace: str, redis_store: RedisChatStore, tmp_path: Path
) -> None:
    chat_id = 4242
    async with Simulator(quick_sim_config(render_seconds=3.0)) as sim:
        command = ChatCommand(sim.base_url, redis_url, namespace, tmp_path, chat_id)
        first = await command.start()
        try:
            assert first.stdout is not None
            await say(first, "make a 5 second video of a harbour")
            await read_until(first.stdout, "Generated a 5s clip")
            await say(first, "/export")
            await read_until(first.stdout, "🎬 Rendering…")

            async def recorded() -> bool:
                return bool((await redis_store.load(chat_id)).pending)

            await until(recorded)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert first.returncode == -signal.SIGKILL
        state = await redis_store.load(chat_id)
        assert len(state.pending) == 1, "the export in flight is on record"
        render_id = state.pending[0].render_id
        assert not sim.requests_to("/cancel")

        code, out, errors = await command.run("--download-dir", str(tmp_path / "videos"))
        assert code == 0, errors[-2000:]
        assert "Traceback" not in out + errors
        assert "Here's your video 🎉" in out
        saved = list((tmp_path / "videos").glob("*.mp4"))
        assert len(saved) == 1 and saved[0].read_bytes() == sample_mp4()
        assert (await redis_store.load(chat_id)).pending == []
        assert sim.world.renders[render_id].snapshot()[0] == "completed"
