"""The Telegram outbox against the fake Bot API server: pacing, floods, formatting, splitting,
chat actions and the three ways a video reaches the user."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web
from telegram import Bot

from bot.io import Button, ChatAction, Progress, SendText, SendVideo, Stream
from bot.telegram import RenderConfig, Renderer, markdown_to_html, split_text
from bot.telegram.format import html_is_balanced
from tests.fake_botapi import MB, BotMessage, FakeBotApi, visible_text
from tests.web_fixtures import serving

CHAT = 4242
GROUP = -100777


@dataclass
class Rig:
    api: FakeBotApi
    bot: Bot
    renderer: Renderer


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        async with bot, httpx.AsyncClient() as http:
            config = RenderConfig(typing_every_s=0.3, allow_private_downloads=True)
            yield Rig(api, bot, Renderer(bot, http, config))


def gaps(message: BotMessage) -> list[float]:
    times = [e.at for e in message.history]
    return [b - a for a, b in itertools.pairwise(times)]


async def stream_words(outbox: object, words: int, every: float, final: str | None = None) -> str:
    send = outbox.send  # type: ignore[attr-defined]
    text = ""
    for i in range(words):
        text += f"word{i} "
        await send(Stream("r", text))
        await asyncio.sleep(every)
    final_text = final or text + "done."
    await send(Stream("r", final_text, final=True, buttons=(Button("🎬 Export", "a:export"),)))
    return final_text


async def test_stream_edits_are_paced_merged_and_final(rig: Rig) -> None:
    outbox = rig.renderer.outbox(CHAT)
    final = await stream_words(outbox, 40, 0.05)
    (message,) = rig.api.sent(CHAT)
    assert message.text == final
    assert message.buttons[0]["callback_data"] == "a:export"
    assert 2 <= len(message.edits) <= 4, "40 ops over 2 s become a few edits"
    assert all(g >= 0.99 for g in gaps(message)), gaps(message)
    await outbox.close()


async def test_a_short_answer_goes_out_whole_in_one_call(rig: Rig) -> None:
    """An answer done within a moment of its first text is one message, sent complete:
    not a fragment whose rest waits a second for the chat's pace."""
    outbox = rig.renderer.outbox(CHAT)
    started = time.monotonic()
    final = await stream_words(outbox, 5, 0.02)
    (message,) = rig.api.sent(CHAT)
    assert message.text == final
    assert message.edits == [], [e.text for e in message.history]
    assert message.created_at - started < 0.9, "not held back for the chat's pace"
    await outbox.close()


async def test_a_long_answer_shows_its_first_text_while_it_streams(rig: Rig) -> None:
    outbox = rig.renderer.outbox(CHAT)
    streaming = asyncio.create_task(stream_words(outbox, 30, 0.05))
    shown = await rig.api.wait_for(lambda: rig.api.sent(CHAT), 5, "the first text")
    assert not streaming.done(), "shown before the answer was complete"
    assert shown[0].history[0].text.startswith("word0")
    await streaming
    await outbox.close()


async def test_group_edits_wait_three_seconds(rig: Rig) -> None:
    outbox = rig.renderer.outbox(GROUP)
    await stream_words(outbox, 30, 0.15)
    (message,) = rig.api.sent(GROUP)
    assert len(message.edits) >= 1
    assert all(g >= 2.99 for g in gaps(message)), gaps(message)


async def test_not_modified_is_ignored(rig: Rig) -> None:
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(Progress("p", "Working"))
    await outbox.send(Progress("p", "Working", done=True))
    (message,) = rig.api.sent(CHAT)
    assert message.text == "Working"
    refused = rig.api.calls_of("editMessageText", ok=False)
    assert all("not modified" in (c.description or "") for c in refused)


async def test_flood_skips_edits_and_waits_for_the_final(rig: Rig) -> None:
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(Stream("r", "Hello"))
    rig.api.flood(retry_after=2, times=1, chat_id=CHAT, methods=["editMessageText"])
    started = time.monotonic()
    for i in range(20):
        await outbox.send(Stream("r", "Hello" + " more" * i))
        await asyncio.sleep(0.1)
    await outbox.send(Stream("r", "Hello, the complete answer.", final=True))
    (message,) = rig.api.sent(CHAT)
    assert message.text == "Hello, the complete answer."
    failed = rig.api.calls_of("editMessageText", ok=False)
    assert [c.error_code for c in failed] == [429]
    after_flood = [e.at for e in message.edits if e.at > failed[0].at]
    assert after_flood and after_flood[0] - failed[0].at >= 1.95, "waited retry_after"
    assert time.monotonic() - started < 8


async def test_final_text_is_formatted_with_plain_fallback(rig: Rig) -> None:
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(SendText("**Done**: `clip.mp4` is *ready*", markdown=True))
    (first,) = rig.api.sent(CHAT)
    assert first.parse_mode == "HTML" and first.text == "Done: clip.mp4 is ready"
    rig.api.refuse_formatting(times=1)
    await outbox.send(Stream("s", "**Bold** start"))
    await outbox.send(Stream("s", "**Bold** answer", final=True))
    second = rig.api.sent(CHAT)[1]
    assert second.text == "**Bold** answer" and second.parse_mode is None
    refused = [c for c in rig.api.calls if c.error_code == 400]
    assert len(refused) == 1 and refused[0].params.get("parse_mode") == "HTML"


async def test_long_text_is_split_without_breaking_words(rig: Rig) -> None:
    words = [f"w{i:05d}" for i in range(2000)]
    text = " ".join(words)
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(SendText(text, buttons=(Button("🆕 New project", "a:new"),)))
    sent = rig.api.sent(CHAT)
    assert len(sent) == 4
    assert all(len(m.text) <= 4096 for m in sent)
    assert " ".join(m.text for m in sent).split() == words
    assert [bool(m.buttons) for m in sent] == [False, False, False, True]


def test_split_and_format_units() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(800)) + "\n```"
    pieces = split_text(code)
    assert len(pieces) > 1
    for piece in pieces:
        assert piece.count("```") % 2 == 0 and len(piece) <= 4096
        markup = markdown_to_html(piece)
        assert html_is_balanced(markup)
        visible_text(markup, "HTML")
    assert split_text("好" * 5000)[0] == "好" * 4088
    html = markdown_to_html("# Title\n- a & b < c\n**x *y** z* [link](https://e.x/?a=1&b=2)")
    assert visible_text(html, "HTML") == "Title\n• a & b < c\nx *y z* link"


async def test_typing_is_renewed_while_working(rig: Rig) -> None:
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(ChatAction("typing"))
    await asyncio.sleep(1.0)
    await outbox.send(Stream("r", "answer", final=True))
    count = len(rig.api.chat_actions(CHAT))
    assert count >= 3
    await asyncio.sleep(0.5)
    assert len(rig.api.chat_actions(CHAT)) == count, "typing stops with the answer"
    await outbox.close()


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A web server with videos of several sizes (HEAD reports a size without the bytes)."""
    sizes = {"small": 50_000, "medium": 25 * MB, "huge": 60 * MB}

    async def video(request: web.Request) -> web.StreamResponse:
        size = sizes[request.match_info["name"]]
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(size), "Content-Type": "video/mp4"})
        return web.Response(body=b"\x00" * size, content_type="video/mp4")

    app = web.Application()
    app.router.add_route("GET", "/{name}.mp4", video)
    app.router.add_route("HEAD", "/{name}.mp4", video)
    async with serving(app) as base_url:
        yield base_url


async def test_video_by_url_then_by_file_id(rig: Rig, files: str) -> None:
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(SendVideo(url=f"{files}/small.mp4", caption="Here's your video 🎉"))
    await outbox.send(SendVideo(url=f"{files}/small.mp4"))
    first, second = rig.api.videos(CHAT)
    assert first.media_source == "url" and first.media_bytes == 50_000
    assert first.text == "Here's your video 🎉"
    assert second.media_source == "file_id"
    assert [a for a, _ in rig.api.chat_actions(CHAT)][:1] == ["upload_video"]


async def test_video_over_20_mb_is_downloaded_and_uploaded(rig: Rig, files: str) -> None:
    outbox = rig.renderer.outbox(CHAT)
    await outbox.send(SendVideo(url=f"{files}/medium.mp4"))
    (video,) = rig.api.videos(CHAT)
    assert video.media_source == "upload" and video.media_bytes == 25 * MB


async def test_video_over_50_mb_becomes_a_link(rig: Rig, files: str) -> None:
    outbox = rig.renderer.outbox(CHAT, "zh")
    url = f"{files}/huge.mp4"
    await outbox.send(SendVideo(url=url, caption="你的视频做好了 🎉"))
    assert rig.api.videos(CHAT) == []
    (message,) = rig.api.sent(CHAT)
    assert message.text == "你的视频做好了 🎉"
    assert message.buttons == [{"text": "▶️ 打开视频", "url": url}]


async def test_private_addresses_are_not_downloaded_unless_allowed(files: str) -> None:
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        async with bot, httpx.AsyncClient() as http:
            renderer = Renderer(bot, http, RenderConfig(allow_private_downloads=False))
            await renderer.outbox(CHAT).send(SendVideo(url=f"{files}/medium.mp4"))
            assert api.videos(CHAT) == []
            refused = api.sent(CHAT)[0]
            assert refused.buttons == [] and "medium.mp4" not in refused.text, "never shown"
            await renderer.outbox(CHAT).send(SendVideo(url="file:///etc/passwd"))
            told = api.sent(CHAT)[1]
            assert told.buttons == [] and "passwd" not in told.text
            assert told.text == refused.text, "the user is told the video cannot be sent"
