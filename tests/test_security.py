"""Secrets and hostile input: tokens never reach logs, replies, exceptions or reprs; one chat
can never touch another's session, token or jobs; video downloads stay on public http(s)
addresses, under a size cap and a deadline; and the operators' log lines carry what they need.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
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
from tests.conversation_fixtures import HarnessFactory, harnesses, quick_sim_config
from tests.fake_botapi import FakeBotApi
from tests.telegram_fixtures import HarnessFactory as BotFactory
from tests.telegram_fixtures import make_bot  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
TOKEN_SHAPES = re.compile(r"nmv_[a-z]+_[0-9A-Za-z]{6}|clm_[0-9A-Za-z]{6}")
NOISY = ("httpx", "httpcore", "telegram", "telegram.ext.Updater", "aiohttp.access", "hpack")


@pytest.fixture
async def make_harness(redis_store: RedisChatStore) -> AsyncIterator[HarnessFactory]:
    async with harnesses(redis_store) as factory:
        yield factory


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
            assert secret not in text, f"a secret appears in {name}"


# --- secrets -------------------------------------------------------------------------------


async def test_no_secret_in_logs_replies_errors_or_reprs_telegram(
    make_bot: BotFactory,  # noqa: F811
    debug_logs: io.StringIO,
) -> None:
    bot = await make_bot()
    api = bot.api
    configure(level="DEBUG", json_lines=True, secrets=[api.token], stream=debug_logs)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG)
    ann = bot.user(7001)
    api.send_command(ann, "start")
    await bot.text_with(ann.id, "Ready")
    api.send_text(ann, "make a 5 second video of a beach")
    await bot.text_with(ann.id, "Generated a 5s clip", timeout=20)
    api.send_command(ann, "export")
    await api.wait_for(lambda: api.videos(ann.id), 30, "the video")
    api.send_command(ann, "credits")
    await bot.text_with(ann.id, "💳 Credits:")
    state = await bot.store.load(ann.id)
    assert state.token and state.session_id and state.task_id
    # A claim link through the bot's own client, so its request is logged too.
    app = bot.app
    creds = Credentials(
        token=state.token, client_id=state.client_id, expires_at=None, anonymous=True
    )
    chat_api = app.client.bind(creds)
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

    secrets = [api.token, api.token.split(":", 1)[1], state.token, claim]
    seen = []
    for message in api.messages:
        seen.append(message.text)
        seen += [e.text for e in message.history]
        seen += [json.dumps(b) for b in message.buttons]
    logs = debug_logs.getvalue()
    assert '"backend call"' in logs and "getUpdates" in logs, "the capture saw everything"
    assert_absent(
        secrets,
        {
            "logs": logs,
            "what the user saw": "\n".join(seen),
            "exception": f"{error!s} {error!r} {error.args!r}"
            + "".join(traceback.format_exception(error)),
            "reprs": " ".join(
                repr(x) for x in (state, creds, chat_api, frozen, app.settings, bot.settings)
            ),
        },
    )
    assert not TOKEN_SHAPES.search(logs), "no token of any chat is logged"


def test_no_secret_in_a_terminal_conversation(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEMO_", "REDIS_", "TELEGRAM_", "LC_", "LANG", "LOG_"))
    }
    env |= {
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "LOG_LEVEL": "DEBUG",
        "LOG_JSON": "true",
    }
    lines = ["/start", "/credits", "make a 5 second video of a lake", "/status", "/export"]
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--offline", "-v", "--download-dir", "videos"],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=90,
        check=False,
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
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


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
