"""PTB's requests over aiohttp: fields, uploads, timeouts and failures, on real loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.telegram.aiohttp_request import AiohttpRequest
from tests.fake_botapi import FakeBotApi
from tests.redis_server import free_port


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


def _bot(api: FakeBotApi, **timeouts: float) -> Bot:
    request = AiohttpRequest(connection_pool_size=4, **timeouts)
    return Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url, request=request)


async def test_fields_markup_and_uploads_reach_the_server(api: FakeBotApi) -> None:
    user = api.user(7)
    api.send_text(user, "hi")
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(50_000)
    async with _bot(api) as bot:
        me = await bot.get_me()
        sent = await bot.send_message(user.id, "Crédits: 100 ✅ 余额")
        clip = await bot.send_video(user.id, video, filename="clip.mp4", caption="done")
    assert me.username == api.username
    assert sent.text == "Crédits: 100 ✅ 余额"
    messages = api.sent(user.id)
    assert [m.kind for m in messages] == ["text", "video"]
    assert messages[1].media_source == "upload" and messages[1].media_bytes == len(video)
    assert clip.caption == "done"
    assert api.calls_of("sendVideo")[-1].params["caption"] == "done"


async def test_plain_fields_go_as_a_form_with_a_user_agent_and_slow_answers_time_out() -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []

    async def answer(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append((request.headers["User-Agent"], request.content_type, dict(form)))  # type: ignore[arg-type]
        if request.path.endswith("/slow"):
            await asyncio.sleep(2)
        if request.path.endswith("/getMe"):
            me = {"id": 1, "is_bot": True, "first_name": "Nemo", "username": "nemo_bot"}
            return web.json_response({"ok": True, "result": me})
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    request = AiohttpRequest(read_timeout=0.3)
    base = f"http://127.0.0.1:{port}/bot1:SECRET"
    try:
        async with Bot("1:SECRET", base_url=f"http://127.0.0.1:{port}/bot", request=request) as bot:
            assert await bot.set_my_description("Videos, by chat")
            with pytest.raises(TimedOut):
                await request.do_request(f"{base}/slow", "POST")
    finally:
        await request.shutdown()
        await runner.cleanup()
    agent, content_type, fields = seen[1]
    assert "python-telegram-bot" in agent
    assert content_type == "application/x-www-form-urlencoded"
    assert fields == {"description": "Videos, by chat"}


async def test_no_server_is_a_network_error_without_the_token() -> None:
    request = AiohttpRequest(connect_timeout=2)
    await request.initialize()
    url = f"http://127.0.0.1:{free_port()}/bot123:SECRET-token/getMe"
    try:
        with pytest.raises(NetworkError) as caught:
            await request.do_request(url, "POST")
    finally:
        await request.shutdown()
    assert not isinstance(caught.value, TimedOut)
    assert "SECRET" not in str(caught.value) and "SECRET" not in repr(caught.value)


async def test_lifecycle(api: FakeBotApi) -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError):
        await request.do_request(f"{api.base_url}{api.token}/getMe", "POST")
    await request.initialize()
    await request.shutdown()
    await request.shutdown()  # twice is harmless
    await request.initialize()  # and it can start again, as PTB does after a restart
    status, body = await request.do_request(f"{api.base_url}{api.token}/getMe", "POST")
    await request.shutdown()
    assert status == 200 and b'"ok":true' in body.replace(b" ", b"")
    assert request.read_timeout == 5.0
