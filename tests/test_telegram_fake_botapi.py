"""The fake Bot API server itself, checked with PTB's own `Bot` and with raw HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from telegram import Bot, BotCommand, BotCommandScopeDefault, InlineKeyboardButton
from telegram import InlineKeyboardMarkup as Markup
from telegram.error import BadRequest, Conflict, RetryAfter

from tests.fake_botapi import MB, FakeBotApi, ParseError, visible_text
from tests.web_fixtures import serving


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as client:
        yield client


async def test_get_me_and_wrong_token(api: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == api.username and me.is_bot
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"{api.root}/bot1:wrong/getMe")
        assert resp.status_code == 401
        assert resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        resp = await http.post(f"{api.base_url}{api.token}/noSuchMethod")
        assert resp.json()["error_code"] == 404


async def test_long_polling_offset_and_allowed_updates(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(42)
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, lambda: api.send_text(user, "hello"))
    updates = await bot.get_updates(timeout=5)
    waited = time.monotonic() - started
    assert 0.25 < waited < 3, "long polling returns as soon as an update arrives"
    assert [u.message.text for u in updates if u.message] == ["hello"]
    again = await bot.get_updates(timeout=0)
    assert len(again) == 1, "unconfirmed updates are delivered again"
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()
    api.send_text(user, "/start")
    sent = api.send_text(user, "kept")
    updates = await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    assert updates == ()
    assert sent["update_id"] > 0
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9


async def test_command_entities_and_mentions(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(7)
    api.send_command(user, "start")
    group = api.group(-1001)
    api.send_text(user, f"hi @{api.username} make it pop", chat=group)
    updates = await bot.get_updates(timeout=0)
    first, second = (u.message for u in updates)
    assert first is not None and second is not None
    assert first.entities[0].type == "bot_command"
    assert second.chat.type == "supergroup" and second.entities[0].type == "mention"
    assert second.parse_entity(second.entities[0]) == f"@{api.username}"


async def test_send_edit_and_not_modified(api: FakeBotApi, bot: Bot) -> None:
    message = await bot.send_message(42, "Hello")
    await bot.edit_message_text("Hello world", chat_id=42, message_id=message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_text("Hello world", chat_id=42, message_id=message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=42, message_id=999)
    record = api.sent(42)[0]
    assert [e.text for e in record.history] == ["Hello", "Hello world"]
    assert record.edits[0].at >= record.created_at


async def test_formatting_is_parsed_like_telegram(api: FakeBotApi, bot: Bot) -> None:
    await bot.send_message(1, "<b>bold</b> &amp; <i>it</i>", parse_mode="HTML")
    assert api.texts(1) == ["bold & it"]
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(1, "<b>open", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(1, "a < b", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)reserved"):
        await bot.send_message(1, "Done.", parse_mode="MarkdownV2")
    await bot.send_message(1, r"*Done*\.", parse_mode="MarkdownV2")
    assert api.texts(1)[-1] == "Done."
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await bot.send_message(1, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)empty"):
        await bot.send_message(1, " ")


def test_markup_parsers() -> None:
    assert visible_text("<a href='https://x.y'>link</a> &lt;3", "HTML") == "link <3"
    assert visible_text("```python\nprint(1)\n```", "MarkdownV2") == "print(1)\n"
    assert visible_text("[site](https://a.b) \\!", "MarkdownV2") == "site !"
    with pytest.raises(ParseError, match=r"(?i)Bold"):
        visible_text("*open", "MarkdownV2")
    with pytest.raises(ParseError, match=r"(?i)Unsupported start tag"):
        visible_text("<h1>x</h1>", "HTML")


async def test_flood_on_demand_and_rate_limit(api: FakeBotApi, bot: Bot) -> None:
    api.flood(retry_after=3, chat_id=5)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(5, "one")
    assert "retry in 3 seconds" in str(caught.value).lower()
    await bot.send_message(5, "two")
    api.rate_limit(6, min_interval_s=1.0, retry_after=1)
    await bot.send_message(6, "a")
    with pytest.raises(RetryAfter):
        await bot.send_message(6, "b")
    failed = api.calls_of("sendMessage", ok=False)
    assert [c.error_code for c in failed] == [429, 429]
    async with httpx.AsyncClient() as http:
        api.flood(retry_after=7)
        resp = await http.post(
            f"{api.base_url}{api.token}/sendMessage", data={"chat_id": 9, "text": "x"}
        )
    assert resp.status_code == 429
    assert resp.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }


async def test_files_sizes_and_downloads(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(3)
    api.send_photo(user, b"\x89PNG" + b"p" * 5000)
    api.send_document(user, "big.png", b"tiny", mime="image/png", file_size=30 * MB)
    photo_update, doc_update = await bot.get_updates(timeout=0)
    assert photo_update.message is not None and doc_update.message is not None
    largest = max(photo_update.message.photo, key=lambda p: p.width * p.height)
    file = await bot.get_file(largest.file_id)
    data = await file.download_as_bytearray()
    assert bytes(data) == b"\x89PNG" + b"p" * 5000
    assert len(api.downloads) == 1 and file.file_path.endswith(api.downloads[0])
    document = doc_update.message.document
    assert document is not None and document.file_size == 30 * MB
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file(document.file_id)


async def test_send_video_upload_url_and_file_id(api: FakeBotApi, bot: Bot) -> None:
    uploaded = await bot.send_video(
        8, video=b"\x00\x00\x00\x18ftypmp42" + b"v" * 1000, filename="out.mp4", caption="Your video"
    )
    assert uploaded.video is not None
    record = api.videos(8)[0]
    assert record.media_source == "upload" and record.text == "Your video"
    stored = api.add_file(b"from-url", path_hint="videos/remote")
    url = f"{api.base_file_url}{api.token}/{stored.path}"
    await bot.send_video(8, video=url)
    await bot.send_video(8, video=uploaded.video.file_id)
    assert [m.media_source for m in api.videos(8)] == ["upload", "url", "file_id"]
    assert api.videos(8)[1].media_bytes == len(b"from-url")
    with pytest.raises(BadRequest, match=r"(?i)failed to get HTTP URL content"):
        await bot.send_video(8, video=f"{api.root}/missing.mp4")
    await bot.send_document(8, document=b"doc", filename="a.txt")
    await bot.send_photo(8, photo=b"img")
    assert [m.kind for m in api.sent(8)] == ["video", "video", "video", "document", "photo"]


async def test_chat_actions_callbacks_and_commands(api: FakeBotApi, bot: Bot) -> None:
    await bot.send_chat_action(4, "typing")
    with pytest.raises(BadRequest):
        await bot.send_chat_action(4, "dancing")
    assert [a for a, _ in api.chat_actions(4)] == ["typing"]
    markup = Markup([[InlineKeyboardButton("Export", callback_data="a:export")]])
    sent = await bot.send_message(4, "Done", reply_markup=markup)
    query = api.press(api.user(4), api.sent(4)[0], "a:export")
    (update,) = await bot.get_updates(timeout=0)
    assert update.callback_query is not None and update.callback_query.data == "a:export"
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == sent.message_id
    await update.callback_query.answer()
    assert query.answered_at is not None
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    await bot.set_my_commands([BotCommand("start", "Start")])
    await bot.set_my_commands([BotCommand("start", "开始")], language_code="zh")
    assert (await bot.get_my_commands(language_code="zh"))[0].description == "开始"
    assert (await bot.get_my_commands(scope=BotCommandScopeDefault()))[0].description == "Start"
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])


async def test_webhook_delivery_secret_retry_and_conflict(api: FakeBotApi, bot: Bot) -> None:
    received: list[tuple[int, str | None]] = []
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        received.append((body["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        if fail_first[0]:
            fail_first[0] = False
            return web.Response(status=500)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as base_url:
        await bot.set_webhook(f"{base_url}/hook", secret_token="s3cret")
        with pytest.raises(Conflict):
            await bot.get_updates()
        update = api.send_text(api.user(11), "via webhook")
        await api.wait_for(lambda: len(received) >= 2, what="a retried delivery")
        assert received[0] == received[1] == (update["update_id"], "s3cret")
        api.resend(update)
        await api.wait_for(lambda: len(received) >= 3, what="the re-sent update")
        assert received[2][0] == update["update_id"]
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook")
        await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()
