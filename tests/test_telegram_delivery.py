"""A finished video always reaches its user, end to end: the unmodified PTB application
against the fake Bot API server, the simulator and a real Redis. Telegram failing to take
the upload is waited out; then a link is sent; when neither arrives the export stays
pending and is delivered once Telegram takes messages again."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
from PIL import Image
from telegram import Bot

from backend.sim import sample_mp4
from bot.io import SendVideo
from bot.telegram import RenderConfig, Renderer
from bot.timeline import timeline_of
from tests import telegram_fixtures
from tests.fake_botapi import ApiCall, BotMessage, FakeBotApi, TgUser
from tests.telegram_fixtures import (
    HarnessFactory,
    TgHarness,
    bot_with_a_project,
    project_ready,
    quick_sim,
)

make_bot = telegram_fixtures.make_bot


async def pending_renders(bot: TgHarness, chat_id: int) -> list[str]:
    return [p.render_id for p in (await bot.store.load(chat_id)).pending]


async def no_pending(bot: TgHarness, chat_id: int, timeout: float = 10.0) -> None:
    """The chat's export is dropped from pending: it was delivered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await pending_renders(bot, chat_id):
        assert loop.time() < deadline, "the export is still pending"
        await asyncio.sleep(0.05)


def link_messages(bot: TgHarness, chat_id: int) -> list[BotMessage]:
    return [m for m in bot.api.sent(chat_id, "text") if any("url" in b for b in m.buttons)]


async def test_a_video_refused_with_502_three_times_is_delivered(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await bot_with_a_project(make_bot, 1701)
    api = bot.api
    api.fail("sendVideo", 502, "Bad Gateway", times=3)
    api.send_command(ann, "export")
    await bot.text_with(ann.id, "✅ Rendered in", timeout=30)
    videos = await api.wait_for(lambda: api.videos(ann.id), 60, "the video after three 502s")
    assert len(videos) == 1 and videos[0].media_bytes
    assert len(api.calls_of("sendVideo", ok=False)) == 3
    assert link_messages(bot, ann.id) == [], "the video itself arrived, no link needed"
    await no_pending(bot, ann.id)


async def test_a_video_telegram_keeps_refusing_arrives_as_a_link_in_the_chats_language(
    make_bot: HarnessFactory,
) -> None:
    bot = await make_bot(telegram_video_retry_s=5)
    api = bot.api
    ann = bot.user(1702, "en")  # Telegram says English; the chat chose Chinese
    await project_ready(bot, ann)
    api.send_command(ann, "lang zh")
    await bot.text_with(ann.id, "语言已设为中文")
    api.fail("sendVideo", 502, "Bad Gateway", times=10_000)
    api.send_command(ann, "export")
    (link,) = await api.wait_for(lambda: link_messages(bot, ann.id), 60, "the link")
    assert link.text == "你的视频做好了 🎉"
    (open_button,) = [b for b in link.buttons if "url" in b]
    assert open_button["text"] == "▶️ 打开视频"
    assert "/renders/" in open_button["url"]
    assert api.videos(ann.id) == []
    assert len(api.calls_of("sendVideo", ok=False)) >= 4, "tried again before giving up"
    await no_pending(bot, ann.id)


async def export_while_telegram_refuses(
    make_bot: HarnessFactory, user_id: int, methods: tuple[str, ...], code: int, reason: str
) -> tuple[TgHarness, TgUser]:
    """A bot trying again quickly, whose user's export is rendering when Telegram starts
    refusing `methods`."""
    bot, user = await bot_with_a_project(
        make_bot, user_id, telegram_video_retry_s=1, sweep_interval_s=0.5
    )
    bot.api.send_command(user, "export")
    await bot.text_with(user.id, "Rendering")
    for method in methods:
        bot.api.fail(method, code, reason, times=10_000)
    return bot, user


def failed_links(bot: TgHarness) -> list[ApiCall]:
    """Refused messages carrying the video's link."""
    return [
        c
        for c in bot.api.calls_of("sendMessage", ok=False)
        if "url" in str(c.params.get("reply_markup"))
    ]


BAD_GATEWAY = (("sendVideo", "sendMessage"), 502, "Bad Gateway")


async def test_an_export_nothing_reached_stays_pending_until_delivered(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await export_while_telegram_refuses(make_bot, 1703, *BAD_GATEWAY)
    api = bot.api

    def tried_again_after_the_link() -> bool:
        links = failed_links(bot)
        return bool(links) and any(c.at > links[-1].at for c in api.calls_of("sendVideo"))

    await api.wait_for(tried_again_after_the_link, 60, "the link refused, the video tried again")
    # Each attempt takes the export out of the store while it sends (so no other job sends
    # it too) and puts it back when nothing arrived: it is seen there between attempts.
    seen: list[str] = []

    async def back_in_the_store() -> bool:
        seen[:] = await pending_renders(bot, ann.id)
        return bool(seen)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not await back_in_the_store():
        assert loop.time() < deadline, "a video nothing reached is kept to send again"
        await asyncio.sleep(0.02)
    (render_id,) = seen
    assert api.videos(ann.id) == []
    api.clear_failures()
    (video,) = await api.wait_for(lambda: api.videos(ann.id), 60, "the video, sent again")
    assert video.media_bytes
    await no_pending(bot, ann.id)
    await asyncio.sleep(1.5)  # a few sweeps
    assert len(api.videos(ann.id)) == 1, "delivered once"
    assert render_id


def rendered_posts(bot: TgHarness, chat_id: int) -> list[str]:
    """Every new message (sent or refused) announcing a finished render."""
    return [
        str(c.params.get("text"))
        for c in bot.api.calls_of("sendMessage")
        if c.params.get("chat_id") == chat_id and "✅" in str(c.params.get("text"))
    ]


async def test_a_render_is_announced_once_however_often_its_delivery_is_tried(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await export_while_telegram_refuses(make_bot, 1705, *BAD_GATEWAY)
    api = bot.api
    await api.wait_for(lambda: failed_links(bot), 60, "a delivery round")
    await bot.restart()  # a process that never showed the render's progress line
    await api.wait_for(lambda: len(failed_links(bot)) >= 3, 60, "two more delivery rounds")
    api.clear_failures()
    await api.wait_for(
        lambda: api.videos(ann.id) + link_messages(bot, ann.id), 60, "the video or its link"
    )
    await no_pending(bot, ann.id)
    assert rendered_posts(bot, ann.id) == [], "the render is announced once, not per round"


async def test_a_user_who_blocked_the_bot_gets_the_video_when_they_ask_again(
    make_bot: HarnessFactory,
) -> None:
    """A blocked bot cannot reach its user: the export is not tried every few minutes for
    ever. The video is kept, and a later /export sends it without a new render."""
    everything = ("sendVideo", "sendMessage", "editMessageText", "sendChatAction")
    blocked = "Forbidden: bot was blocked by the user"
    bot, ann = await export_while_telegram_refuses(make_bot, 1706, everything, 403, blocked)
    api = bot.api
    await api.wait_for(lambda: failed_links(bot), 60, "the video and its link refused")
    await no_pending(bot, ann.id)
    tries = len(api.calls_of("sendVideo"))
    await asyncio.sleep(3)  # several sweeps
    assert len(api.calls_of("sendVideo")) == tries, "a blocked user is not tried again"
    renders = sum("Rendering" in text for text in api.texts(ann.id))
    api.clear_failures()  # the user unblocks the bot
    api.send_command(ann, "export")
    (video,) = await api.wait_for(lambda: api.videos(ann.id), 30, "the kept video")
    assert video.media_bytes
    assert sum("Rendering" in text for text in api.texts(ann.id)) == renders, "no new render"


async def test_a_video_is_sent_with_its_length_size_and_streaming(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await bot_with_a_project(make_bot, 1704)
    api = bot.api
    api.send_command(ann, "export")
    (video,) = await api.wait_for(lambda: api.videos(ann.id), 40, "the video")
    draft = (await bot.store.load(ann.id)).last_draft
    timeline = timeline_of(draft)
    assert timeline.canvas is not None and timeline.duration_s > 0
    (call,) = api.calls_of("sendVideo", ok=True)
    assert call.params["supports_streaming"] in (True, "true")
    assert int(call.params["duration"]) == round(timeline.duration_s)
    assert int(call.params["width"]) == timeline.canvas.width
    assert int(call.params["height"]) == timeline.canvas.height
    assert video.media is not None
    assert (video.media["width"], video.media["height"]) == (
        timeline.canvas.width,
        timeline.canvas.height,
    )


async def test_progress_is_one_message_with_a_bar_and_the_time_left(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await bot_with_a_project(make_bot, 1705, sim_config=quick_sim(render_seconds=6.0))
    api = bot.api
    mark = len(api.sent(ann.id))
    api.send_command(ann, "export")
    await api.wait_for(lambda: api.videos(ann.id), 40, "the video")
    (progress,) = [m for m in api.sent(ann.id, "text")[mark:] if "Render" in m.history[0].text]
    shown = [e.text for e in progress.history]
    assert shown[0].startswith("🎬 Rendering… ") and "░" in shown[0], shown
    moving = [s for s in shown if "▓" in s and "left" in s]
    assert moving, shown
    for text in moving:
        percent = int(text.split("… ", 1)[1].split("%", 1)[0])
        bar = text.split(") ", 1)[1].split(" ", 1)[0]
        assert len(bar) == 12 and bar.count("▓") == round(12 * percent / 100), text
    assert progress.text.startswith("✅ Rendered in")


async def test_an_uploaded_video_carries_its_own_size_and_a_thumbnail(tmp_path: Path) -> None:
    """A render's preview image (any size, PNG here) goes out as a JPEG of at most 320 px;
    the length and size sent are the file's."""
    video = tmp_path / "render.mp4"
    video.write_bytes(sample_mp4())
    poster = tmp_path / "poster.png"
    Image.new("RGB", (1080, 1920), (200, 40, 90)).save(poster)
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        async with bot, httpx.AsyncClient() as http:
            outbox = Renderer(bot, http, RenderConfig()).outbox(4242)
            op = SendVideo(path=str(video), duration=5.4, width=1080, height=1920)
            await outbox.send(SendVideo(**{**op.__dict__, "thumbnail": str(poster)}))
    (sent,) = api.videos(4242)
    assert sent.media is not None and "thumbnail" in sent.media
    thumb = api.files[sent.media["thumbnail"]["file_id"]].data
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "JPEG" and max(image.size) <= 320
        assert image.size[1] > image.size[0], "the picture keeps its shape"
    (call,) = api.calls_of("sendVideo")
    # The uploaded file's own header (1 s, 160 × 90) wins over what the project said.
    assert (call.params["duration"], call.params["width"], call.params["height"]) == (
        "1",
        "160",
        "90",
    )
