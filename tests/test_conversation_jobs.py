"""One job at a time per chat: queueing, /cancel, quiet streams, and exports that outlive
the process that started them."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from backend import Credentials
from bot.conversation import MAX_QUEUED
from bot.io import Progress, SendText, SendVideo, Stream
from bot.store import PendingExport, RedisChatStore
from bot.texts import t
from tests.conversation_fixtures import Harness, HarnessFactory, Recorder, quick_sim_config


async def export_under_way(h: Harness) -> asyncio.Task[None]:
    """/export, running until the render shows progress past 0%."""
    start = len(h.out.ops)
    job = h.later("/export")
    await h.out.wait_for(
        lambda op: isinstance(op, Progress) and "Rendering… " in op.text and "… 0%" not in op.text,
        start=start,
    )
    return job


async def busy_chat(make_harness: HarnessFactory) -> tuple[Harness, list[asyncio.Task[None]]]:
    """A chat whose agent has started a long, quiet answer; the job running it."""
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("quiet_stream", seconds=1.0, every=0.2)
    tasks = [h.later("make a 3 second video of a cat")]
    await h.out.wait_for(lambda op: isinstance(op, Progress | Stream))
    return h, tasks


def is_text(prefix: str) -> object:
    return lambda op: isinstance(op, SendText) and op.text.startswith(prefix)


async def test_message_during_a_job_is_answered_at_once_and_runs_after(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    await h.say("/start")
    token = await h.token()
    h.sim.set_fault("quiet_stream", seconds=1.5, every=0.2)
    first = h.later("make a 5 second video of a forest")
    await h.out.wait_for(lambda op: isinstance(op, Progress | Stream))
    await asyncio.sleep(0.1)
    mark = len(h.out.ops)
    started = time.monotonic()
    second = h.later('add a title "Deep Woods"')
    busy = await h.out.wait_for(is_text("⏳ Still working on"), start=mark, timeout=1.0)
    assert time.monotonic() - started < 1.0, "answered at once, not after the job"
    assert isinstance(busy, SendText)
    assert busy.text == (
        "⏳ Still working on your message “make a 5 second video of a forest”. "
        "Your message is queued and comes next; /cancel to stop."
    )
    # /credits is not stuck behind the lock either.
    credits_mark = len(h.out.ops)
    await asyncio.wait_for(h.conv.handle(h.inbound("/credits"), h.out), 2.0)
    assert not first.done(), "the credits answer came while the job was still running"
    assert h.out.texts(credits_mark)[-1].startswith("💳 Credits:")

    await asyncio.wait_for(asyncio.gather(first, second), 20)
    finals = [s.text for s in h.out.streams() if s.final]
    assert "Generated a 5s clip" in finals[-2]
    assert 'Added the title "Deep Woods"' in finals[-1]
    assert h.sim.user_for(token) is not None
    lock = await h.store.try_lock(h.chat_id, "probe", 1)
    assert lock, "the chat lock is released after the queue ran"
    await h.store.unlock(h.chat_id, "probe")


async def test_queue_keeps_order(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("quiet_stream", seconds=0.8, every=0.2)
    tasks = [h.later("make a 3 second video of a cat")]
    await asyncio.sleep(0.2)
    tasks.append(h.later('add a title "One"'))
    await asyncio.sleep(0.05)
    tasks.append(h.later("add piano music"))
    await asyncio.wait_for(asyncio.gather(*tasks), 20)
    finals = [s.text for s in h.out.streams() if s.final]
    assert ["clip" in finals[0], '"One"' in finals[1], "Soft Piano" in finals[2]] == [True] * 3
    busy = [t for t in h.out.texts() if t.startswith("⏳ Still working on")]
    assert len(busy) == 2


async def test_cancel_mid_stream(make_harness: HarnessFactory) -> None:
    h = await make_harness(quiet_notice_s=0.3)
    await h.say("/start")
    h.sim.set_fault("quiet_stream", seconds=20, every=0.2)
    job = h.later("make a 5 second video of a volcano")
    await h.out.wait_for(lambda op: isinstance(op, Progress) and op.text.startswith("⏳"))
    started = time.monotonic()
    mark = len(h.out.ops)
    await asyncio.wait_for(h.conv.handle(h.inbound("/cancel"), h.out), 5)
    assert time.monotonic() - started < 3
    await asyncio.wait_for(job, 5)
    # The agent's edit may go on on the server: the reply says so, not "Stopped".
    assert any(text.startswith(t("stopped_chat", "en")) for text in h.out.texts(mark))
    assert [p for p in h.out.progress(mark) if p.done], "the progress line is closed"
    # The chat is free again, and the next message works normally.
    texts = await asyncio.wait_for(h.say("/credits"), 5)
    assert texts[0].startswith("💳 Credits:")
    assert await h.store.try_lock(h.chat_id, "probe", 1)
    await h.store.unlock(h.chat_id, "probe")


async def test_cancel_keeps_partial_text_marked_as_stopped(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    h.sim.config.chunk_delay_s = 0.3  # a slow speaker
    await h.say("/start")
    job = h.later("make a 5 second video of a volcano")
    first = await h.out.wait_for(lambda op: isinstance(op, Stream) and bool(op.text), timeout=10)
    assert isinstance(first, Stream)
    await h.conv.handle(h.inbound("/cancel"), h.out)
    await asyncio.wait_for(job, 5)
    finals = [s for s in h.out.streams() if s.final]
    assert len(finals) == 1 and finals[0].ref == first.ref
    assert finals[0].text.endswith(" … (stopped)")


async def test_nothing_to_cancel(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    assert await h.say("/cancel") == ["Nothing is running right now."]
    assert await h.say("/cancel", lang="zh") == ["目前没有正在进行的任务。"]


async def test_cancel_mid_export_cancels_the_render(make_harness: HarnessFactory) -> None:
    h = await make_harness(sim_config=quick_sim_config(render_seconds=30))
    await h.say("make a 5 second video of a bridge")
    job = await export_under_way(h)
    pending = (await h.state()).pending
    assert len(pending) == 1
    mark = len(h.out.ops)
    await asyncio.wait_for(h.conv.handle(h.inbound("/cancel"), h.out), 5)
    await asyncio.wait_for(job, 5)
    assert h.out.texts(mark) == ["⏹ Export cancelled; the render was stopped on the server."]
    assert len(h.sim.requests_to(f"/api/render/proxy/lambda/{pending[0].render_id}/cancel")) == 1
    assert not h.out.videos()
    assert (await h.state()).pending == []
    assert await h.store.chats_with_work() == []


async def test_export_past_the_deadline_is_cancelled_server_side(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(sim_config=quick_sim_config(render_seconds=30), export_deadline_s=0.6)
    await h.say("make a 5 second video of a bridge")
    mark = len(h.out.ops)
    texts = await asyncio.wait_for(h.say("/export"), 10)
    assert texts == [
        "⌛ The render took longer than 0.6 s, so I stopped it on the server. "
        "Please try /export again later."
    ]
    assert len(h.sim.requests_to("/cancel")) == 1
    assert [p.text for p in h.out.progress(mark)][-1] == "⌛ Render took too long"
    assert (await h.state()).pending == []


async def test_long_quiet_stream_shows_one_updated_notice(make_harness: HarnessFactory) -> None:
    h = await make_harness(quiet_notice_s=0.4)
    await h.say("/start")
    h.sim.set_fault("quiet_stream", seconds=2.2, every=0.1)
    mark = len(h.out.ops)
    await asyncio.wait_for(h.say("make a 5 second video of a storm"), 15)
    notices = [p for p in h.out.progress(mark) if p.text.startswith("⏳ Still working…")]
    # Quiet for ~2.2 s with a 0.4 s threshold: about five notices, all edits of one message.
    assert 3 <= len(notices) <= 6, [p.text for p in notices]
    assert len({p.ref for p in h.out.progress(mark)}) == 1
    assert notices[0].text == "⏳ Still working… (0:00)"
    assert notices[-1].text in ("⏳ Still working… (0:01)", "⏳ Still working… (0:02)")
    assert h.out.progress(mark)[-1].done
    final = [s for s in h.out.streams(mark) if s.final][-1]
    assert "Generated a 5s clip" in final.text


async def test_restart_with_an_export_in_flight(
    make_harness: HarnessFactory, redis_store: RedisChatStore
) -> None:
    first = await make_harness(sim_config=quick_sim_config(render_seconds=2.5), lock_ttl_s=1.0)
    await first.say("make a 5 second video of a harbour")
    job = await export_under_way(first)
    # The process dies: its jobs stop without a word, its lock is left behind to expire.
    await first.conv.aclose()
    await asyncio.wait_for(job, 5)
    await redis_store.try_lock(first.chat_id, "crashed-process", 1.0)
    assert not first.out.videos()
    state = await first.state()
    assert len(state.pending) == 1 and isinstance(state.pending[0], PendingExport)
    assert await redis_store.chats_with_work() == [first.chat_id]
    assert not first.sim.requests_to("/cancel"), "a restart never cancels a render"

    second = await make_harness(sim=first.sim, lock_ttl_s=1.0)
    outboxes: dict[int, Recorder] = {}

    def outbox_for(chat_id: int) -> Recorder:
        return outboxes.setdefault(chat_id, Recorder())

    await asyncio.wait_for(second.conv.resume_pending(outbox_for), 2)
    await asyncio.wait_for(second.conv.wait_idle(), 15)
    delivered = outboxes[first.chat_id]
    videos = delivered.videos()
    assert len(videos) == 1 and isinstance(videos[0], SendVideo)
    assert videos[0].url and videos[0].url.endswith(f"{state.pending[0].render_id}.mp4")
    assert videos[0].caption == "Here's your video 🎉"
    progress = delivered.progress()
    assert progress[-1].done and progress[-1].ref == state.pending[0].progress_ref
    assert (await second.state()).pending == []
    assert await redis_store.chats_with_work() == []


async def test_resumed_export_speaks_the_chats_language(
    make_harness: HarnessFactory, redis_store: RedisChatStore
) -> None:
    h = await make_harness()
    await h.say("做一个5秒的海边视频", lang="zh")
    state = await h.state()
    # A render started by an earlier process, recorded in the store:
    token = await h.token()
    mine = h.app.client.bind(
        Credentials(token=token, client_id=state.client_id, expires_at=None, anonymous=True)
    )
    job = await mine.start_export(state.session_id or "", state.last_draft or {})
    pending = PendingExport(render_id=job.id, started_at=time.time(), lang="zh")
    await redis_store.add_pending(h.chat_id, pending)
    out = Recorder()
    await h.conv.resume_pending(lambda _chat: out)
    await asyncio.wait_for(h.conv.wait_idle(), 15)
    assert out.videos()[0].caption == "你的视频做好了 🎉"
    assert out.progress()[-1].text.startswith("✅ 渲染完成")


async def test_pending_export_of_another_process_is_cancelled_by_cancel(
    make_harness: HarnessFactory, redis_store: RedisChatStore
) -> None:
    h = await make_harness(sim_config=quick_sim_config(render_seconds=30))
    await h.say("make a 5 second video of a lake")
    other = await make_harness(sim=h.sim)
    job = other.later("/export")
    await other.out.wait_for(lambda op: isinstance(op, Progress) and "Rendering" in op.text)
    await asyncio.sleep(0.3)
    # A different process (h) gets /cancel: it is not running the export itself.
    assert (await h.say("/cancel")) == ["⏹ Export cancelled; the render was stopped on the server."]
    await asyncio.wait_for(job, 10)
    assert other.out.progress()[-1].text == "⏹ Render stopped", "its progress line is closed"
    assert other.out.texts() == [], "the user was told once, by the process that stopped it"
    assert not other.out.videos()


async def test_a_flooded_chat_refuses_beyond_its_queue(make_harness: HarnessFactory) -> None:
    h, tasks = await busy_chat(make_harness)
    mark = len(h.out.ops)
    for i in range(MAX_QUEUED + 1):
        tasks.append(h.later(f'add a title "N{i}"'))
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    texts = h.out.texts(mark)
    assert len([t for t in texts if t.startswith("⏳ Still working on")]) == MAX_QUEUED
    notices = [p for p in h.out.progress(mark) if p.text.startswith("✋")]
    assert notices and f"✋ {MAX_QUEUED} messages are already waiting" in notices[0].text
    titles = [t for t in texts if "Added the title" in t]
    assert [f'"N{i}"' in t for i, t in enumerate(titles)] == [True] * MAX_QUEUED, titles


async def test_a_flood_gets_one_notice_with_its_count_and_one_log_line(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h, tasks = await busy_chat(make_harness)
    mark = len(h.out.ops)
    caplog.set_level(logging.INFO, logger="bot.conversation")
    acks: list[int] = []
    flood = MAX_QUEUED + 30
    for i in range(flood):
        msg = h.inbound(f"flood {i}")
        tasks.append(
            asyncio.create_task(h.conv.handle(msg, h.out, accepted=lambda: acks.append(1)))
        )
        await asyncio.sleep(0)
    done = await h.out.wait_for(
        lambda op: isinstance(op, Progress) and op.done and op.text.startswith("✋"),
        timeout=30,
        start=mark,
    )
    assert len(acks) == flood, "every message, taken or refused, is acknowledged"
    notices = [p for p in h.out.progress(mark) if p.text.startswith("✋")]
    assert {p.ref for p in notices} == {notices[0].ref}, "one notice for the burst"
    assert "did not take the 30 sent after them" in done.text
    assert not any(t.startswith("✋") for t in h.out.texts(mark)), "no message per refusal"
    burst_lines = [r for r in caplog.records if r.getMessage() == "flood refused"]
    assert [getattr(r, "refused", None) for r in burst_lines] == [30]
    handled = [r for r in caplog.records if r.getMessage() == "message handled"]
    assert len(handled) <= MAX_QUEUED + 1, "refused messages are not logged one by one"
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
