"""The front end's own rules, end to end: groups, the allowlist, /stats, command menus, the
error handler, and `nemobot run` as a real process (polling and webhook)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Callable

import pytest

from bot.cli import run as cmd_run
from bot.io import Inbound, Outbox, ReaderFor
from bot.telegram import TelegramConfig, TelegramFront
from tests import telegram_fixtures
from tests.fake_botapi import FakeBotApi
from tests.process_fixtures import clean_env
from tests.telegram_fixtures import (
    HarnessFactory,
    free_port,
    quick_sim,
)

make_bot = telegram_fixtures.make_bot


async def test_groups_answer_only_when_addressed(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    api = bot.api
    group = api.group(-100500)
    ann = bot.user(1001)
    api.send_text(ann, "hello everyone, what do you think of my clip?", chat=group)
    api.send_command(ann, "help@some_other_bot", chat=group)
    await asyncio.sleep(1.5)
    assert api.sent(group["id"]) == []
    api.send_command(ann, f"help@{api.username}", chat=group)
    help_text = await bot.text_with(group["id"], "/cancel – stop")
    api.send_text(ann, "credits?", chat=group, reply_to=help_text.message_id)
    await bot.text_with(group["id"], "💳 Credits:")
    api.send_text(ann, f"@{api.username} credits?", chat=group)
    await api.wait_for(
        lambda: len([t for t in api.texts(group["id"]) if "💳" in t]) == 2, 10, "a second answer"
    )
    assert not any(
        "hello everyone" in m.text or "some_other_bot" in m.text for m in api.sent(group["id"])
    )


async def test_allowlist_refuses_others_politely(make_bot: HarnessFactory) -> None:
    bot = await make_bot(allowed_user_ids=[1100])
    api = bot.api
    stranger, owner = bot.user(1101), bot.user(1100)
    api.send_command(stranger, "start")
    refusal = await bot.text_with(stranger.id, "private")
    assert "1101" in refusal.text
    api.send_text(stranger, "please?")
    await asyncio.sleep(0.5)
    assert len(api.sent(stranger.id)) == 1, "told once"
    assert bot.sim.requests_to("/api/tasks/") == []
    api.send_command(owner, "start")
    await bot.text_with(owner.id, "I make videos")


async def test_stats_for_admins_only(make_bot: HarnessFactory) -> None:
    bot = await make_bot(admin_user_ids=[1200])
    api = bot.api
    admin, user = bot.user(1200), bot.user(1201)
    api.send_command(user, "start")
    await bot.text_with(user.id, "I make videos")
    api.send_command(admin, "stats")
    stats = await bot.text_with(admin.id, "Chats:")
    assert "Chats: 2" in stats.text and "Exports today: 0" in stats.text
    assert "Jobs running:" in stats.text and "Errors by kind:" in stats.text
    api.send_command(user, "stats")
    await asyncio.sleep(1.0)
    assert not any("Chats:" in t for t in api.texts(user.id))


async def test_command_menus_in_english_and_chinese(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    english = bot.api.commands[("default", "")]
    chinese = bot.api.commands[("default", "zh")]
    names = [c["command"] for c in english]
    assert {"start", "new", "export", "status", "credits", "cancel", "lang", "help"} <= set(names)
    assert [c["command"] for c in chinese] == names
    assert dict((c["command"], c["description"]) for c in chinese)["export"] == "渲染视频并发到这里"


class BrokenConversation:
    """A conversation that fails: the real one never raises, so only a stand-in can."""

    async def handle(self, msg: Inbound, out: Outbox, **_: object) -> None:
        raise RuntimeError("database password is hunter2")

    def is_control(self, msg: Inbound) -> bool:
        return False

    async def resume_pending(
        self, outbox_for: Callable[[int], Outbox], *, reader_for: ReaderFor | None = None
    ) -> None:
        return None


async def test_one_error_handler_logs_context_and_answers_kindly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeBotApi() as api:
        config = TelegramConfig(api.token, api.base_url, api.base_file_url)
        front = TelegramFront(BrokenConversation(), config)
        application = front.build()
        await application.initialize()
        await application.post_init(application)
        await application.updater.start_polling(poll_interval=0, timeout=1)
        await application.start()
        try:
            caplog.set_level(logging.ERROR, logger="bot.telegram.front")
            ann = api.user(1300)
            update = api.send_text(ann, "hello")
            sorry = await api.wait_text(ann.id, "Sorry, something went wrong")
            assert "hunter2" not in sorry.text and "Traceback" not in sorry.text
            (record,) = [r for r in caplog.records if r.name == "bot.telegram.front"]
            assert record.chat_id == ann.id  # type: ignore[attr-defined]
            assert record.update_id == update["update_id"]  # type: ignore[attr-defined]
            assert front.stats.errors == {"RuntimeError": 1}
            menu = await api.wait_for(lambda: api.sent(ann.id), 5)
            assert len(menu) == 1
        finally:
            await application.updater.stop()
            await application.stop()
            await application.shutdown()


async def test_a_press_answered_twice_is_not_an_error(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    api = bot.api
    ann = bot.user(1301)
    api.send_command(ann, "start")
    menu = await api.wait_for(
        lambda: next((m for m in api.sent(ann.id) if m.buttons), None), 15, "the menu"
    )
    api.fail("answerCallbackQuery", 400, "Bad Request: QUERY_ID_INVALID")
    query = api.press(ann, menu, "a:credits")
    await bot.text_with(ann.id, "💳 Credits:")
    assert query.answered_at is None
    assert not any("Sorry" in text for text in api.texts(ann.id))


def test_run_arguments() -> None:
    parser = argparse.ArgumentParser()
    cmd_run.add_arguments(parser)
    args = parser.parse_args(["--webhook", "https://bot.example.com/tg/hook", "--port", "9000"])
    assert args.webhook == "https://bot.example.com/tg/hook" and args.port == 9000
    assert cmd_run.webhook_path(args.webhook) == "tg/hook"
    assert parser.parse_args([]).webhook is None


async def _run_process(api: FakeBotApi, sim_url: str, *extra: str) -> asyncio.subprocess.Process:
    env = clean_env(
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE=api.base_url,
        TELEGRAM_FILE_BASE=api.base_file_url,
        NEMO_API_BASE=sim_url,
        REDIS_URL="",
        DATA_DIR=tempfile.mkdtemp(prefix="nemobot-run-"),
        LOG_LEVEL="WARNING",
        WEBHOOK_LISTEN="127.0.0.1",
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_nemobot_run_serves_users_and_stops_on_sigterm(mode: str) -> None:
    from backend.sim import Simulator

    async with FakeBotApi() as api, Simulator(quick_sim()) as sim:
        extra: tuple[str, ...] = ()
        if mode == "webhook":
            port = free_port()
            extra = ("--webhook", f"http://127.0.0.1:{port}/tg/hook", "--port", str(port))
        process = await _run_process(api, sim.base_url, *extra)
        try:
            ann = api.user(1400)
            api.send_command(ann, "start")
            await api.wait_text(ann.id, "I make videos", timeout=30)
            if mode == "webhook":
                assert api.webhook_url.endswith("/tg/hook")
                assert api.calls_of("getUpdates") == []
            else:
                assert api.calls_of("getUpdates")
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert b"Traceback" not in stderr
        assert api.token.split(":")[1].encode() not in stderr
