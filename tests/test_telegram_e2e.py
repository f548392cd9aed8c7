"""End to end: what a Telegram user sees, with the unmodified PTB application talking HTTP
to the fake Bot API server, the NemoVideo simulator behind it and a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import time

from tests import telegram_fixtures
from tests.fake_botapi import MB, BotMessage
from tests.telegram_fixtures import (
    ANIMATE,
    HarnessFactory,
    animated_reply,
    bot_with_a_project,
    png_bytes,
    quick_sim,
    ready,
    slow_stream,
)

make_bot = telegram_fixtures.make_bot


def gaps(message: BotMessage) -> list[float]:
    """Seconds between one version of a message and the next."""
    times = [e.at for e in message.history]
    return [b - a for a, b in itertools.pairwise(times)]


async def test_a_quick_set_up_greets_at_once_in_english_and_chinese(
    make_bot: HarnessFactory,
) -> None:
    """A set-up done in a moment shows no status line: the welcome is the first message,
    and the answer follows a second later."""
    bot = await make_bot()
    ann = bot.user(501, "en")
    bot.api.send_command(ann, "start")
    await bot.text_with(ann.id, "I make videos with you")
    li = bot.user(502, "zh-hans")
    bot.api.send_text(li, "你好")
    await bot.text_with(li.id, "我可以陪你聊着天做视频")
    await asyncio.sleep(1.5)  # a status line held back would have been shown by now
    for user in (ann, li):
        first = bot.api.sent(user.id, "text")[0]
        assert first.text.startswith(("I make videos", "我可以陪你")), first.text
        seen = [e.text for m in bot.api.sent(user.id, "text") for e in m.history]
        assert not any(("⚙️" in text or "✅" in text) for text in seen), seen


async def test_a_slow_set_up_shows_its_line_and_then_ready(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    bot.sim.set_fault("slow", seconds=2.0, path="/with-session/")
    ann = bot.user(503, "en")
    bot.api.send_command(ann, "start")
    setup = await bot.text_with(ann.id, "Ready")
    assert setup.history[0].text.startswith("⚙️ Setting things up")
    assert setup.text == "✅ Ready!"
    welcome = await bot.text_with(ann.id, "I make videos with you")
    assert bot.api.sent(ann.id, "text").index(welcome) == 1
    assert all(g >= 0.99 for g in gaps(setup))


async def test_photo_animate_stream_export_video(make_bot: HarnessFactory) -> None:

    bot = await make_bot()
    ann = bot.user(601)
    api = bot.api
    api.send_photo(ann, png_bytes(640, 480))
    await bot.text_with(ann.id, "Got 1 file")
    mark = len(api.sent(ann.id))
    api.send_text(ann, ANIMATE)

    def final_reply() -> BotMessage | None:
        for m in api.sent(ann.id, "text")[mark:]:
            if m.buttons and any(b["text"] == "🎬 Export" for b in m.buttons):
                return m
        return None

    reply = await api.wait_for(final_reply, 30, "the streamed reply with buttons")
    assert all(g >= 0.99 for g in gaps(reply)), gaps(reply)
    assert not any(m.text == reply.text for m in api.sent(ann.id)[mark:] if m is not reply)
    shown = sorted(c.at for c in api.calls if c.chat_id == ann.id and c.method != "sendChatAction")
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(shown)), "one call a second per chat"
    typing = [at for action, at in api.chat_actions(ann.id) if action == "typing"]
    assert typing, "the chat showed typing while the agent worked"

    mark = len(api.sent(ann.id))
    api.send_text(ann, "导出")
    video = await api.wait_for(lambda: api.videos(ann.id), 40, "the exported video")
    (sent,) = video
    assert sent.media_bytes and sent.media_bytes > 1000
    assert sent.media_source in ("url", "upload")
    progress = [m for m in api.sent(ann.id, "text")[mark:] if len(m.history) > 1]
    assert progress, "one progress message, edited"
    assert any("%" in e.text for e in progress[0].history)
    assert all(g >= 0.99 for g in gaps(progress[0]))
    uploads = [a for a, _ in api.chat_actions(ann.id) if a == "upload_video"]
    assert uploads


async def test_album_of_three_photos_is_one_upload(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    api = bot.api
    ann = bot.user(701)
    api.send_command(ann, "start")
    await bot.text_with(ann.id, "I make videos with you")
    api.send_album(ann, [png_bytes(320, 240), png_bytes(300, 200), png_bytes(200, 100)])
    got = await bot.text_with(ann.id, "Got 3 files", timeout=20)
    assert got.text.count("image") == 3
    assert len(bot.sim.requests_to("/api/upload-video/")) == 1
    assert not any("Got 1 file" in text for text in api.texts(ann.id))
    assert len(api.downloads) == 3, "each photo fetched once, largest size only"


async def test_oversized_and_unsupported_files_are_refused(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    api = bot.api
    ann = bot.user(702)
    api.send_document(ann, "holiday.png", b"\x89PNG tiny", mime="image/png", file_size=30 * MB)
    refusal = await bot.text_with(ann.id, "holiday.png")
    assert "30.0 MB" in refusal.text and "20.0 MB" in refusal.text
    api.send_document(ann, "setup.exe", b"MZ\x90\x00", mime="application/x-msdownload")
    refusal = await bot.text_with(ann.id, "setup.exe")
    assert "Accepted" in refusal.text and "mp4" in refusal.text and "png" in refusal.text
    assert api.calls_of("getFile") == [] and api.downloads == []
    assert bot.sim.requests_to("/api/upload-video/") == []


async def test_a_refused_file_does_not_lose_the_rest_of_its_album(
    make_bot: HarnessFactory,
) -> None:
    """The refusal and the accepted files come from one update: both are answered."""
    bot = await make_bot()
    api = bot.api
    ann = bot.user(703)
    big = api.send_document(
        ann, "poster.png", b"tiny", mime="image/png", file_size=30 * MB, media_group_id="g7"
    )
    api.send_document(ann, "still.png", png_bytes(), mime="image/png", media_group_id="g7")
    refusal = await bot.text_with(ann.id, "poster.png")
    assert "30.0 MB" in refusal.text
    got = await bot.text_with(ann.id, "📥 Got 1 file", timeout=30)
    assert "still.png" in got.text
    assert len(api.downloads) == 1
    api.resend(big)
    await asyncio.sleep(1.5)  # the album window, and then some
    assert len([t for t in api.texts(ann.id) if "poster.png" in t]) == 1, "deduplicated"


async def test_flood_during_streaming_still_delivers_the_whole_answer(
    make_bot: HarnessFactory,
) -> None:
    bot = await make_bot(sim_config=slow_stream())
    api = bot.api
    calm, flooded = bot.user(801), bot.user(802)
    for user in (calm, flooded):
        await ready(bot, user)
        api.send_photo(user, png_bytes())
        await bot.text_with(user.id, "Got 1 file")
    mark_calm = len(api.sent(calm.id))
    api.send_text(calm, ANIMATE)
    expected = (await animated_reply(bot, calm, mark_calm)).text

    api.rate_limit(flooded.id, min_interval_s=1.5, retry_after=1)
    mark = len(api.sent(flooded.id))
    api.send_text(flooded, ANIMATE)
    reply = await animated_reply(bot, flooded, mark)
    assert reply.text == expected
    refused = [c for c in api.calls if not c.ok and c.chat_id == flooded.id]
    assert refused and all(c.error_code == 429 for c in refused)
    assert all(g >= 0.99 for g in gaps(reply))


async def test_cancel_during_a_stream(make_bot: HarnessFactory) -> None:
    bot = await make_bot(sim_config=slow_stream())
    api = bot.api
    ann = bot.user(803)
    await ready(bot, ann)
    mark = len(api.sent(ann.id))
    api.send_text(ann, "tell me a long story about making films")

    def streaming() -> BotMessage | None:
        for m in api.sent(ann.id, "text")[mark:]:
            if len(m.history) >= 2:
                return m
        return None

    reply = await api.wait_for(streaming, 20, "the answer streaming")
    asked = time.monotonic()
    api.send_command(ann, "cancel")
    await api.wait_for(lambda: "(stopped)" in reply.text, 10, "the stopped answer")
    stopped = await bot.text_with(ann.id, "I stopped following the agent's answer")
    assert stopped.created_at - asked < 3
    versions = len(reply.history)
    await asyncio.sleep(1.5)
    assert len(reply.history) == versions, "nothing edits a cancelled answer"


async def test_buttons_and_credits_answer_at_once_while_a_job_runs(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await bot_with_a_project(make_bot, 804, sim_config=quick_sim(render_seconds=6.0))
    api = bot.api
    api.send_command(ann, "export")
    await bot.text_with(ann.id, "Rendering")
    mark = len(api.sent(ann.id))
    menu = next(
        m for m in api.sent(ann.id) if "a:status" in [b.get("callback_data") for b in m.buttons]
    )
    query = api.press(ann, menu, "a:status")
    api.send_command(ann, "credits")
    # One message a second in a chat: the answers (credits, the timeline picture and its
    # text) take its next turns, whatever the running export has to show, and all come
    # while the export still runs.
    credits = await bot.text_with(ann.id, "💳 Credits:", timeout=6)
    status = await bot.text_with(ann.id, "Timeline", timeout=6, after=mark)
    (video,) = await api.wait_for(lambda: api.videos(ann.id), 30, "the video")
    assert query.answered_at is not None and query.answered_at < credits.created_at
    assert max(credits.created_at, status.created_at) < video.created_at


async def test_restart_during_export_delivers_the_video(make_bot: HarnessFactory) -> None:
    bot, ann = await bot_with_a_project(make_bot, 805, sim_config=quick_sim(render_seconds=4.0))
    api = bot.api
    api.send_command(ann, "export")
    await bot.text_with(ann.id, "Rendering")
    first = bot.application
    await bot.restart()
    assert bot.application is not first
    videos = await api.wait_for(lambda: api.videos(ann.id), 30, "the video after a restart")
    assert len(videos) == 1 and videos[0].media_bytes
    await asyncio.sleep(1.0)
    assert len(api.videos(ann.id)) == 1, "delivered once"


async def test_webhook_mode_processes_a_resent_update_once(make_bot: HarnessFactory) -> None:
    bot = await make_bot(webhook=True, secret="hook-secret_1")
    api = bot.api
    assert api.webhook_url.endswith("/tg/hook") and api.webhook_secret == "hook-secret_1"
    ann = bot.user(806)
    await ready(bot, ann)
    update = api.send_command(ann, "help")
    await bot.text_with(ann.id, "/cancel – stop")
    helps = len([t for t in api.texts(ann.id) if "/cancel – stop" in t])
    assert helps == 1
    api.resend(update)
    await api.wait_for(
        lambda: [s for u, s in api.webhook_deliveries if u == update["update_id"]][1:],
        10,
        "the second delivery",
    )
    await asyncio.sleep(1.0)
    assert len([t for t in api.texts(ann.id) if "/cancel – stop" in t]) == helps
    assert [s for u, s in api.webhook_deliveries if u == update["update_id"]] == [200, 200]
    assert api.calls_of("getUpdates") == []


async def test_videos_audio_and_images_sent_as_files_are_uploaded(
    make_bot: HarnessFactory,
) -> None:
    from backend.sim import sample_mp4

    bot = await make_bot()
    api = bot.api
    ann = bot.user(901)
    await ready(bot, ann)
    api.send_video(ann, sample_mp4())
    await bot.text_with(ann.id, "Got 1 file")
    api.send_document(ann, "poster.png", png_bytes(), mime="image/png")
    await api.wait_for(lambda: len([t for t in api.texts(ann.id) if "Got 1 file" in t]) == 2, 15)
    api.send_audio(ann, b"ID3" + b"\x00" * 4000)
    await api.wait_for(lambda: len([t for t in api.texts(ann.id) if "Got 1 file" in t]) == 3, 15)
    kinds = "\n".join(t for t in api.texts(ann.id) if "Got 1 file" in t)
    assert "video" in kinds and "image" in kinds and "audio" in kinds
    assert len(bot.sim.requests_to("/api/upload-video/")) == 3
    assert len(api.downloads) == 3
