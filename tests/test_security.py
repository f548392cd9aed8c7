"""Secrets and hostile input: tokens never reach logs, replies, exceptions or reprs; one chat
can never touch another's session, token or jobs; video downloads stay on public http(s)
addresses, under a size cap and a deadline; and the operators' log lines carry what they need.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web
from telegram import Bot

from backend import Credentials, NemoError
from bot.io import SendVideo
from bot.ops.logs import configure
from bot.store import RedisChatStore
from bot.telegram import RenderConfig, Renderer
from bot.telegram.outbox import is_public_address
from tests.conversation_fixtures import HarnessFactory, quick_sim_config
from tests.fake_botapi import FakeBotApi
from tests.process_fixtures import clean_env
from tests.telegram_fixtures import HarnessFactory as BotFactory
from tests.telegram_fixtures import make_bot  # noqa: F401 - fixture
from tests.terminal_fixtures import run_chat
from tests.web_fixtures import serving

MB = 1024 * 1024
TOKEN_SHAPES = re.compile(
    r"nmv_[a-z]+_[0-9A-Za-z]{6}|clm_[0-9A-Za-z]{6}|eyJ[\w-]{6,}\.[\w-]{6,}\.|\d{8,10}:[\w-]{30,}"
)
NOISY = ("httpx", "httpcore", "telegram", "telegram.ext.Updater", "aiohttp.access", "hpack")


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Every logger of every library at DEBUG, through our redacting JSON handler."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in NOISY})
    buffer = io.StringIO()
    configure(level="DEBUG", json_lines=True, stream=buffer)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def assert_absent(secrets: list[str], where: dict[str, str]) -> None:
    for name, text in where.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {name}: {secret[:6]}…"


# --- secrets -------------------------------------------------------------------------------


async def test_no_secret_in_logs_replies_errors_or_reprs_telegram(
    make_bot: BotFactory,  # noqa: F811
    debug_logs: io.StringIO,
) -> None:
    """A whole session over the webhook at DEBUG, with deliberate failures on every side;
    then every place a secret could surface is searched for every secret."""
    from bot.telegram.webhook import webhook_secret

    # The secrets are known before the bot starts, as `nemobot run` knows them.
    token = FakeBotApi().token
    secrets = [token, webhook_secret(token)]
    configure(level="DEBUG", json_lines=True, secrets=secrets, stream=debug_logs)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG)
    bot = await make_bot(webhook=True)
    api = bot.api
    hook_secret = api.webhook_secret
    assert hook_secret, "a secret is registered even though none is configured"
    ann = bot.user(7001)
    api.send_command(ann, "start")
    await bot.text_with(ann.id, "I make videos")
    api.send_text(ann, "make a 5 second video of a beach")
    await bot.text_with(ann.id, "Generated a 5s clip", timeout=20)
    api.send_command(ann, "export")
    await api.wait_for(lambda: api.videos(ann.id), 30, "the video")
    api.send_command(ann, "credits")
    await bot.text_with(ann.id, "💳 Credits:")
    first = await bot.store.load(ann.id)
    assert first.token and first.session_id and first.task_id and first.client_id
    # Deliberate failures: the chat's token expires (renewed with the client id), Telegram
    # refuses a message, a disguised file, forged and malformed webhook calls.
    bot.sim.expire_token(first.token)
    api.fail("sendMessage", 500, "Internal Server Error")
    api.send_command(ann, "status")
    api.send_command(ann, "credits")
    mark = len(api.sent(ann.id, "text"))  # `after` counts text messages only
    await bot.text_with(ann.id, "💳 Credits:", after=mark)
    api.send_document(ann, "holiday.jpg", b"just text, not a photo", mime="image/jpeg")
    await bot.text_with(ann.id, "holiday.jpg", after=mark)
    hook = f"http://127.0.0.1:{bot.webhook_port}/tg/hook"
    header = "X-Telegram-Bot-Api-Secret-Token"
    async with httpx.AsyncClient(timeout=10) as http:
        forged = {"update_id": 1, "message": {"chat": {"id": "x"}}}
        assert (await http.post(hook, json=forged)).status_code == 403
        assert (await http.post(hook, json=forged, headers={header: hook_secret})).status_code < 500
        deep = "[" * 50_000 + "]" * 50_000
        assert (
            await http.post(hook, content=deep, headers={header: hook_secret})
        ).status_code == 400
    state = await bot.store.load(ann.id)
    assert state.token and state.token != first.token, "the token was renewed"
    # A claim link through the bot's own client, so its request is logged too.
    app = bot.app
    assert app is not None and bot.front is not None
    creds = Credentials(
        token=state.token, client_id=state.client_id, expires_at=None, anonymous=True
    )
    chat_api = app.client.bind(creds)
    assert state.task_id and state.session_id
    link = await chat_api.claim_link(state.task_id, state.session_id)
    claim = parse_qs(urlsplit(link).query)["ct"][0]
    # An error raised with the chat's token in the request.
    bot.sim.expire_token(state.token)
    bot.sim.set_fault("token_expired", times=5)
    frozen = app.client.bind(
        Credentials(token=state.token, client_id=None, expires_at=None, anonymous=False)
    )
    with pytest.raises(NemoError) as caught:
        await frozen.credits()
    error = caught.value
    # Readiness against a Redis that needs a password and does not answer, and /metrics.
    from bot.ops.health import serve_health
    from tests.redis_server import free_port

    locked = RedisChatStore.from_url(f"redis://default:{REDIS_PASSWORD}@127.0.0.1:1/0")
    port = free_port()
    runner = await serve_health(app.metrics, {"redis": locked.ping}, "127.0.0.1", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/readyz")).status_code == 503
            metrics = (await http.get("/metrics")).text
    finally:
        await runner.cleanup()
        await locked.aclose()

    secrets = [
        api.token,
        api.token.split(":", 1)[1],
        hook_secret,
        first.token,
        state.token,
        claim,
        state.client_id,
        REDIS_PASSWORD,
    ]
    seen = []
    for message in api.messages:
        seen.append(message.text)
        seen += [e.text for e in message.history]
        seen += [json.dumps(b) for b in message.buttons]
    parameters = [
        json.dumps(
            {
                k: v
                for k, v in call.params.items()
                if call.method != "setWebhook" or k != "secret_token"
            },
            default=str,
        )
        for call in api.calls
    ]
    logs = debug_logs.getvalue()
    assert '"backend call"' in logs and "getWebhookInfo" not in logs, "the capture saw everything"
    assert "anonymous token renewed" in logs and "sendMessage" in logs
    assert_absent(
        secrets,
        {
            "logs": logs,
            "what the user saw": "\n".join(seen),
            "Bot API parameters": "\n".join(parameters),
            "/metrics": metrics,
            "exception": f"{error!s} {error!r} {error.args!r}"
            + "".join(traceback.format_exception(error)),
        },
    )
    shown = (state, creds, chat_api, frozen, app.settings, bot.settings, bot.front.config, locked)
    assert_absent(secrets, {"reprs": " ".join(map(repr, shown))})
    assert not TOKEN_SHAPES.search(logs), "no token of any chat is logged"
    assert "Traceback" not in "\n".join(seen)


async def test_jwt_shaped_operator_token_never_surfaces(
    make_bot: BotFactory,  # noqa: F811
    debug_logs: io.StringIO,
) -> None:
    """The service's tokens need not start with `nmv_`: a JWT is masked by its shape alone."""
    from dataclasses import replace

    from tests.telegram_fixtures import quick_sim

    bot = await make_bot(sim_config=replace(quick_sim(), operator_token=JWT), nemo_token=JWT)
    api = bot.api
    ann = bot.user(7101)
    api.send_command(ann, "start")
    await bot.text_with(ann.id, "I make videos")
    api.send_text(ann, "make a 5 second video of a lake")
    await bot.text_with(ann.id, "Generated a 5s clip", timeout=20)
    bot.sim.set_fault("token_expired", times=5)
    mark = len(api.sent(ann.id))
    api.send_command(ann, "credits")
    await api.wait_for(lambda: api.sent(ann.id)[mark:], 15, "an answer")
    logs = debug_logs.getvalue()
    assert '"backend call"' in logs
    replies = "\n".join(m.text for m in api.messages)
    assert_absent([JWT, JWT.split(".")[2]], {"logs": logs, "replies": replies})
    assert not TOKEN_SHAPES.search(logs + replies)


def test_no_secret_in_a_terminal_conversation(tmp_path: Path) -> None:
    lines = ["/start", "/credits", "make a 5 second video of a lake", "/status", "/export"]
    result = run_chat(
        lines,
        tmp_path,
        *("--offline", "-v", "--download-dir", "videos"),
        env={"LOG_LEVEL": "DEBUG", "LOG_JSON": "true"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Here's your video 🎉" in result.stdout
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert not TOKEN_SHAPES.search(everything), "no token in the terminal or its logs"
    records = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    calls = [r for r in records if r["event"] == "backend call"]
    assert {"POST /api/auth/anonymous-token", "POST /run_sse"} <= {r["backend_call"] for r in calls}


# --- chat isolation ------------------------------------------------------------------------

CRAFTED = [
    "a:cancel",
    "a:export:1",
    "a:status;chat_id=1",
    "a:credits\n",
    "a:new ",
    "A:EXPORT",
    "a:" + "x" * 5000,
    "b:export",
    "a:export\x00",
    "",
]


async def test_one_chat_cannot_touch_another_chats_jobs(make_harness: HarnessFactory) -> None:
    h = await make_harness(sim_config=quick_sim_config(render_seconds=30))
    alice, bob = 101, 202
    await h.say("make a 5 second video of a canyon", chat_id=alice)
    job = h.later("/export", chat_id=alice)

    async def rendering() -> bool:
        return bool((await h.state(alice)).pending)

    deadline = time.monotonic() + 10
    while not await rendering():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    a = await h.state(alice)

    # Bob, on his own, with every crafted button and every command that acts on jobs.
    mark = len(h.out.ops)
    for data in CRAFTED:
        await h.conv.handle(h.inbound(button=data, chat_id=bob), h.out)
    assert h.out.texts(mark) == [], "crafted button data is ignored without a word"
    assert (await h.state(bob)).session_id is None
    texts = await h.say("/cancel", chat_id=bob)
    assert len(texts) == 1 and "Nothing" in texts[0], texts
    texts = await h.say("/status", chat_id=bob)
    assert any("empty" in t for t in texts), texts
    texts = await h.say(button="a:export", chat_id=bob)
    assert any("Nothing to export" in t or "nothing to export" in t for t in texts), texts
    b = await h.state(bob)
    assert b.token and b.token != a.token
    assert b.session_id and b.session_id != a.session_id
    assert b.pending == []
    assert not h.sim.requests_to("/cancel"), "Alice's render was never touched"
    assert not job.done()
    assert (await h.state(alice)).pending == a.pending

    # Bob's token cannot read Alice's project at the service either.
    bob_api = h.app.client.bind(
        Credentials(token=b.token, client_id=b.client_id, expires_at=None, anonymous=True)
    )
    with pytest.raises(NemoError):
        assert a.session_id
        await bob_api.state(a.session_id)

    await h.say("/cancel", chat_id=alice)
    await asyncio.wait_for(job, 10)
    assert len(h.sim.requests_to("/cancel")) == 1


async def test_crafted_callback_data_through_telegram(make_bot: BotFactory) -> None:  # noqa: F811
    bot = await make_bot()
    api = bot.api
    ann, ben = bot.user(8001), bot.user(8002)
    api.send_command(ann, "start")
    await bot.text_with(ann.id, "Things to try")
    api.send_command(ben, "start")
    menu = await bot.text_with(ben.id, "Things to try")
    before = await bot.store.load(ann.id)
    marks = len(api.sent(ben.id)), len(api.sent(ann.id))
    for data in CRAFTED[:-1]:
        api.push_update(
            {
                "callback_query": {
                    "id": f"q{len(data)}",
                    "from": ben.as_json(),
                    "message": {
                        "message_id": menu.message_id,
                        "date": int(time.time()),
                        "chat": {"id": ben.id, "type": "private"},
                        "text": "menu",
                    },
                    "chat_instance": "1",
                    "data": data,
                }
            }
        )
    api.send_command(ben, "credits")
    await bot.text_with(ben.id, "💳 Credits:", after=marks[0])
    assert [m.text for m in api.sent(ben.id)[marks[0] :]][:-1] == []
    assert len(api.sent(ann.id)) == marks[1]
    assert await bot.store.load(ann.id) == before


# --- video downloads -----------------------------------------------------------------------


def test_public_addresses_only() -> None:
    for private in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo carrying 10.0.0.1
        "224.0.0.1",
        "not an address",
    ):
        assert not is_public_address(private), private
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert is_public_address(public), public


@pytest.fixture
async def hostile_files() -> AsyncIterator[str]:
    """Video URLs that misbehave: too big without saying so, dripping, redirecting."""

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        for _ in range(200):
            await response.write(b"\x00" * 64 * 1024)
        return response

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        for _ in range(600):
            await response.write(b"\x00")
            await asyncio.sleep(0.05)
        return response

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data")

    app = web.Application()
    app.router.add_get("/endless.mp4", endless)
    app.router.add_get("/drip.mp4", drip)
    app.router.add_get("/redirect.mp4", redirect)
    async with serving(app, shutdown_timeout=0.1) as base_url:
        yield base_url


@pytest.mark.parametrize(("name", "within"), [("endless", 10.0), ("drip", 3.0), ("redirect", 3.0)])
async def test_misbehaving_video_urls_become_a_link(
    hostile_files: str, name: str, within: float
) -> None:
    config = RenderConfig(
        allow_private_downloads=True, upload_video_bytes=1 * MB, download_timeout_s=0.5
    )
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        async with bot, httpx.AsyncClient() as http:
            outbox = Renderer(bot, http, config).outbox(4242)
            url = f"{hostile_files}/{name}.mp4"
            started = time.monotonic()
            await asyncio.wait_for(outbox.send(SendVideo(url=url)), within)
            assert time.monotonic() - started < within
            assert api.videos(4242) == []
            assert api.sent(4242)[0].buttons[0]["url"] == url


async def test_private_names_are_resolved_and_refused(hostile_files: str) -> None:
    port = urlsplit(hostile_files).port
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        async with bot, httpx.AsyncClient() as http:
            renderer = Renderer(bot, http, RenderConfig(allow_private_downloads=False))
            outbox = renderer.outbox(4242)
            for url in (
                f"http://localhost:{port}/endless.mp4",
                "file:///etc/passwd",
                "ftp://127.0.0.1/video.mp4",
                "http://[::1]/video.mp4",
            ):
                assert await outbox._target(url) is None, url
                assert await outbox._download(url, MB) is None, url
            allowed = Renderer(bot, http, RenderConfig(allow_private_downloads=True))
            assert await allowed.outbox(1)._target(f"http://localhost:{port}/x.mp4") is not None
            assert await allowed.outbox(1)._target("file:///etc/passwd") is None


# --- observability -------------------------------------------------------------------------


async def test_json_log_line_per_backend_call(
    make_harness: HarnessFactory, debug_logs: io.StringIO
) -> None:
    h = await make_harness()
    await h.say("/start")
    await h.say("/status")
    await h.say("/credits", update_id=4711)
    port = int(h.sim.base_url.rsplit(":", 1)[1])
    await h.sim.stop()
    await h.say("/credits")
    await h.sim.start(port=port)
    calls = [r for r in json_lines(debug_logs) if r["event"] == "backend call"]
    by_call = {r["backend_call"]: r for r in calls}
    state = by_call["GET /api/state/nemo_agent/me/:id/latest"]
    assert state["status"] == 200 and state["outcome"] == "ok"
    assert isinstance(state["duration_ms"], int | float) and state["duration_ms"] >= 0
    assert state["logger"] == "bot.backend" and state["level"] == "info"
    assert "POST /api/tasks/me/with-session/nemo_agent" in by_call
    failed = [r for r in calls if r["backend_call"] == "GET /api/credits/balance/simple"]
    assert [r["outcome"] for r in failed] == ["ok", "ConnectError"]
    assert (failed[0]["chat_id"], failed[0]["update_id"]) == (h.chat_id, 4711)
    assert failed[-1]["status"] is None
    for record in calls:
        assert set(record) >= {"ts", "backend_call", "status", "duration_ms", "outcome"}
        assert "nmv_" not in json.dumps(record) and "?" not in record["backend_call"]


async def test_json_log_line_per_handled_message(
    make_harness: HarnessFactory, debug_logs: io.StringIO
) -> None:
    from bot.io import Inbound

    h = await make_harness()
    await h.conv.handle(
        Inbound(chat_id=31, user_id=31, text="/credits", language_code="en", update_id=990001),
        h.out,
    )
    await h.conv.handle(
        Inbound(
            chat_id=31,
            user_id=31,
            text="make a 5 second video of a pier",
            language_code="en",
            update_id=990002,
        ),
        h.out,
    )
    handled = [r for r in json_lines(debug_logs) if r.get("update_id") in (990001, 990002)]
    handled = [r for r in handled if r["event"] == "message handled"]
    assert {r["update_id"] for r in handled} == {990001, 990002}
    for record in handled:
        assert record["chat_id"] == 31 and record["intent"] and record["outcome"] == "ok"


# --- who may act ---------------------------------------------------------------------------


def forged_press(user: Any, chat_id: int, message: dict[str, Any], data: str, qid: str) -> dict:
    return {
        "callback_query": {
            "id": qid,
            "from": user.as_json(),
            "message": {"chat": {"id": chat_id, "type": "private"}, **message},
            "chat_instance": "1",
            "data": data,
        }
    }


async def test_button_data_acts_only_as_a_button_of_the_bots_own_message(
    make_bot: BotFactory,  # noqa: F811
) -> None:
    bot = await make_bot()
    api = bot.api
    ann, eve = bot.user(8101), bot.user(8102)
    api.send_command(ann, "start")
    menu = await bot.text_with(ann.id, "Things to try")
    api.send_command(eve, "start")
    eves_menu = await bot.text_with(eve.id, "Things to try")
    assert {b.get("callback_data") for b in menu.buttons} >= {"a:credits"}
    mark = len(api.sent(ann.id)), len(api.sent(eve.id))
    date = int(time.time())
    bot_user = {"id": api.bot_id, "is_bot": True, "first_name": "Nemo"}
    real = {
        "message_id": menu.message_id,
        "date": date,
        "from": bot_user,
        "text": menu.text,
        "reply_markup": menu.reply_markup,
    }
    forged = [
        # Data the message never carried (the menu has no export button).
        forged_press(ann, ann.id, real, "a:export", "f1"),
        # The message as shown without its buttons.
        forged_press(
            ann, ann.id, {k: v for k, v in real.items() if k != "reply_markup"}, "a:credits", "f2"
        ),
        # A message of the user's own, dressed with the bot's buttons.
        forged_press(ann, ann.id, {**real, "from": ann.as_json()}, "a:credits", "f3"),
        # A message Telegram no longer shows (too old): nothing to check the data against.
        forged_press(ann, ann.id, {"message_id": menu.message_id, "date": 0}, "a:credits", "f5"),
    ]
    for update in forged:
        api.push_update(update)
    api.press(eve, eves_menu, "a:credits")
    await bot.text_with(eve.id, "💳 Credits:", after=mark[1])
    await asyncio.sleep(0.3)
    assert len(api.sent(ann.id)) == mark[0], [m.text for m in api.sent(ann.id)[mark[0] :]]
    # A real press of Ann's menu still acts.
    api.press(ann, menu, "a:credits")
    await bot.text_with(ann.id, "💳 Credits:", after=mark[0])


async def test_refusing_an_outsider_never_fails_loudly(
    make_bot: BotFactory,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await make_bot(allowed_user_ids=[8201])
    api = bot.api
    insider, outsider = bot.user(8201), bot.user(8202)
    api.send_command(insider, "start")
    menu = await bot.text_with(insider.id, "Things to try")
    caplog.set_level(logging.INFO)
    # A press whose answer Telegram refuses (an unknown or expired query id).
    api.push_update(
        forged_press(
            outsider,
            outsider.id,
            {"message_id": menu.message_id, "date": int(time.time()), "text": "x"},
            "a:credits",
            "no-such-query",
        )
    )
    await api.wait_for(
        lambda: api.calls_of("answerCallbackQuery", ok=False), 10, "the refused answer"
    )
    await asyncio.sleep(0.3)
    assert api.sent(outsider.id) == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text


# --- secrets in reprs, settings and errors -------------------------------------------------

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcGVyYXRvciIsImlhdCI6MTcwMDAwMDAwMH0."
    "c2lnbmF0dXJlLW9mLXRoZS1vcGVyYXRvci10b2tlbg"
)
BOT_TOKEN = "7123456789:AAH" + "q" * 32
REDIS_PASSWORD = "r3d1s-Pa55w0rd"


def test_settings_and_telegram_config_never_show_a_secret() -> None:
    from bot.settings import SettingsError, load_settings
    from bot.telegram import TelegramConfig

    settings = load_settings(
        telegram_bot_token=BOT_TOKEN,
        webhook_secret="hook-secret_99",
        nemo_token=JWT,
        redis_url=f"redis://default:{REDIS_PASSWORD}@cache.internal:6379/0",
    )
    config = TelegramConfig.from_settings(settings)
    shown = {
        "repr(Settings)": repr(settings),
        "str(Settings)": str(settings),
        "model_dump_json": settings.model_dump_json(),
        "model_dump": str(settings.model_dump()),
        "repr(TelegramConfig)": repr(config),
    }
    assert_absent(
        [BOT_TOKEN, BOT_TOKEN.split(":")[1], "hook-secret_99", JWT, REDIS_PASSWORD], shown
    )
    assert "cache.internal:6379" in repr(settings), "operators still see where Redis is"
    assert settings.redis_url is not None
    assert REDIS_PASSWORD in settings.redis_url.get_secret_value()
    with pytest.raises(SettingsError) as caught:
        load_settings(redis_url=f"http://default:{REDIS_PASSWORD}@cache.internal/0")
    assert REDIS_PASSWORD not in str(caught.value) and "REDIS_URL" in str(caught.value)


def test_log_lines_mask_client_ids_and_jwts() -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    client_id = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
    try:
        configure(level="DEBUG", json_lines=True, stream=buffer)
        log = logging.getLogger("bot.test")
        log.info("anonymous token renewed", extra={"client_id": client_id})
        log.info("token %s in text", JWT, extra={"headers": {"client_id": client_id}})
    finally:
        root.handlers[:], root.level = saved
    text = buffer.getvalue()
    assert client_id not in text and JWT not in text
    first = json_lines(buffer)[0]
    assert first["client_id"].startswith(client_id[:4]), "a prefix still matches lines up"


def run_env(api: FakeBotApi, sim_url: str, **extra: str) -> dict[str, str]:
    return (
        clean_env(
            "WEBHOOK_",
            "METRICS_",
            "LOG_",
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE=api.base_url,
            TELEGRAM_FILE_BASE=api.base_file_url,
            NEMO_API_BASE=sim_url,
            LOG_LEVEL="DEBUG",
            LOG_JSON="true",
        )
        | extra
    )


async def test_a_rejected_bot_token_is_never_printed(tmp_path: Path) -> None:
    async with FakeBotApi() as api:
        for wrong in ("not-a-token-but-SECRET-x9", BOT_TOKEN):
            env = run_env(api, "http://127.0.0.1:9", TELEGRAM_BOT_TOKEN=wrong)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            everything = (out + err).decode()
            assert process.returncode not in (0, None)
            assert wrong not in everything and wrong.split(":")[-1] not in everything
            assert "Traceback" not in everything
            assert "TELEGRAM_BOT_TOKEN" in everything, everything[-2000:]


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP port of this machine listens on, from /proc/net/tcp."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.read().splitlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":
                    found.add(address)
    return found


async def test_webhook_needs_a_secret_even_when_none_is_configured(tmp_path: Path) -> None:
    from tests.redis_server import free_port

    deep = "[" * 100_000 + "]" * 100_000
    async with FakeBotApi(webhook_retry_s=0.05) as api:
        ports = [free_port(), free_port()]
        metrics_port = free_port()
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        processes = []
        try:
            for index, port in enumerate(ports):
                extra = {"METRICS_PORT": str(metrics_port)} if index == 0 else {}
                env = run_env(api, "http://127.0.0.1:9", WEBHOOK_LISTEN="127.0.0.1", **extra)
                with open(logs[index], "wb") as sink:
                    processes.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable,
                            *("-m", "bot", "run", "--port", str(port)),
                            *("--webhook", f"http://127.0.0.1:{port}/tg/hook"),
                            cwd=tmp_path,
                            env=env,
                            stdout=asyncio.subprocess.DEVNULL,
                            stderr=sink,
                        )
                    )
                await api.wait_for(
                    lambda p=port: api.webhook_url.endswith(f"{p}/tg/hook"), 60, "registered"
                )
                registered = api.webhook_secret
                assert registered and re.fullmatch(r"[A-Za-z0-9_-]{32,256}", registered)
                assert api.token not in registered and api.token.split(":")[1] not in registered
                if index == 0:
                    first = registered
            assert registered == first, "every replica registers the same secret"
            ann = api.user(8301)
            forged = forged_press(ann, 8302, {"message_id": 1, "date": 1}, "a:credits", "q1")
            async with httpx.AsyncClient(timeout=10) as http:
                for port in ports:
                    url = f"http://127.0.0.1:{port}/tg/hook"
                    header = "X-Telegram-Bot-Api-Secret-Token"
                    body = {"update_id": 99, **forged}
                    assert (await http.post(url, json=body)).status_code == 403
                    wrong = {header: "0" * 64}
                    assert (await http.post(url, json=body, headers=wrong)).status_code == 403
                    right = {header: first, "Content-Type": "application/json"}
                    assert (await http.post(url, content=deep, headers=right)).status_code == 400
            assert listening_addresses(metrics_port) == {"0100007F"}, "metrics on loopback only"
        finally:
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.wait_for(process.wait(), 30)
    assert api.calls_of("sendMessage") == [], "no forged press reached a chat"
    text = logs[0].read_text() + logs[1].read_text()
    assert "Traceback" not in text and first not in text
    refused = [r for r in json_lines(io.StringIO(text)) if "webhook body" in r["event"]]
    assert len(refused) == 2, "one line per refused body"


# --- bad input -----------------------------------------------------------------------------


async def test_a_video_address_the_bot_refused_is_never_shown(hostile_files: str) -> None:
    port = urlsplit(hostile_files).port
    refused = (
        f"http://127.0.0.1:{port}/endless.mp4",
        f"http://localhost:{port}/endless.mp4",
        "http://169.254.169.254/latest/video.mp4",
        "file:///srv/renders/video.mp4",
    )
    async with FakeBotApi() as api:
        bot = Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        async with bot, httpx.AsyncClient() as http:
            renderer = Renderer(bot, http, RenderConfig(allow_private_downloads=False))
            for chat_id, url in enumerate(refused, start=4300):
                await renderer.outbox(chat_id, "zh").send(SendVideo(url=url, caption="🎉"))
                sent = api.sent(chat_id)
                assert api.videos(chat_id) == []
                assert len(sent) == 1, url
                shown = sent[0].text + json.dumps(sent[0].buttons)
                assert url not in shown and "169.254" not in shown and "file:" not in shown
                assert "视频做好了" in sent[0].text, "the user is told, in their language"


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_empty_or_disguised_files_are_never_uploaded_nor_cost_credits(
    make_harness: HarnessFactory, lang: str
) -> None:
    from tests.conversation_fixtures import FileStub, png_bytes

    h = await make_harness()
    await h.say("/start", lang=lang)
    balance = h.sim.requests_to("/api/credits")
    generated = len(h.sim.requests_to("/run_sse"))
    hostile = (
        FileStub("empty.jpg", "image/jpeg", b""),
        FileStub("notes.jpg", "image/jpeg", b"dear diary, this is only text\n" * 20),
        FileStub("clip.mp4", "video/mp4", b"#!/bin/sh\nrm -rf /\n" * 10),
        FileStub("song.mp3", None, png_bytes()),
    )
    for stub in hostile:
        texts = await h.say("animate this", files=(stub,), lang=lang)
        assert len(texts) == 1, texts
        assert stub.name in texts[0]
        assert "jpg" in texts[0] and "mp4" in texts[0], "the accepted types are listed"
        assert ("不符" in texts[0]) == (lang == "zh"), texts[0]
    assert h.sim.requests_to("/api/upload-video") == []
    assert len(h.sim.requests_to("/run_sse")) == generated, "nothing was generated"
    assert len(h.sim.requests_to("/api/credits")) == len(balance)
    # The real thing still goes through.
    texts = await h.say(files=(FileStub("cat.png", "image/png", png_bytes()),), lang=lang)
    assert len(h.sim.requests_to("/api/upload-video")) == 1, texts
