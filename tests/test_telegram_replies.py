"""What users read and what operators' logs say, end to end on the fake Bot API server: one
quiet log line per handled flood error, one upload indicator at a time, groups without the
private welcome, the user's own words kept literal, and the agent's editor-speak rewritten
into what works in Telegram."""

from __future__ import annotations

import itertools
import logging

import pytest

from tests import telegram_fixtures
from tests.fake_botapi import BotMessage
from tests.telegram_fixtures import (
    ANIMATE,
    HarnessFactory,
    TgHarness,
    animated_reply,
    bot_with_a_project,
    png_bytes,
    ready,
    slow_stream,
)

make_bot = telegram_fixtures.make_bot


async def final_reply(bot: TgHarness, chat_id: int, mark: int) -> BotMessage:
    """The agent's answer once its last edit (the formatted one) arrived."""

    def done() -> BotMessage | None:
        for message in bot.api.sent(chat_id, "text")[mark:]:
            if message.history[-1].parse_mode or message.buttons:
                return message
        return None

    return await bot.api.wait_for(done, 30, "the final reply")


async def test_handled_flood_errors_are_one_info_line_and_no_traceback(
    make_bot: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = await make_bot(sim_config=slow_stream())
    api = bot.api
    ann = bot.user(1801)
    await ready(bot, ann)
    api.send_photo(ann, png_bytes())
    await bot.text_with(ann.id, "Got 1 file")
    caplog.clear()
    api.rate_limit(ann.id, min_interval_s=1.5, retry_after=1)
    mark = len(api.sent(ann.id))
    api.send_text(ann, ANIMATE)
    await animated_reply(bot, ann, mark)
    floods = [c for c in api.calls if c.error_code == 429 and c.chat_id == ann.id]
    assert floods, "the chat was flooded"
    lines = [r for r in caplog.records if "flood" in r.getMessage().lower()]
    assert len(lines) == 1, ("one line for the burst", [r.getMessage() for r in lines])
    assert {r.levelno for r in lines} == {logging.INFO}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("telegram"))


async def test_an_export_shows_one_upload_indicator_at_a_time(make_bot: HarnessFactory) -> None:
    bot, ann = await bot_with_a_project(make_bot, 1802)
    api = bot.api
    api.send_command(ann, "export")
    await api.wait_for(lambda: api.videos(ann.id), 40, "the video")
    uploads = [at for action, at in api.chat_actions(ann.id) if action == "upload_video"]
    assert uploads
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(uploads)), uploads


async def test_a_groups_first_status_answers_without_the_private_welcome(
    make_bot: HarnessFactory,
) -> None:
    bot = await make_bot()
    api = bot.api
    group = api.group(-1001802)
    ann = bot.user(1803)
    api.send_command(ann, f"status@{api.username}", chat=group)
    await bot.text_with(group["id"], "Your project is empty so far")
    assert not any("I make videos with you" in text for text in api.texts(group["id"]))
    # Asked for, a group gets it; a private chat's first contact always does.
    other = api.group(-1001803)
    api.send_command(ann, f"start@{api.username}", chat=other)
    await bot.text_with(other["id"], "I make videos with you")
    api.send_command(ann, "status")
    await bot.text_with(ann.id, "I make videos with you")


async def test_the_users_own_markdown_characters_stay_literal(make_bot: HarnessFactory) -> None:
    bot = await make_bot()
    api = bot.api
    ann = bot.user(1804)
    await ready(bot, ann)
    mark = len(api.sent(ann.id))
    api.send_text(ann, "add the title **wow**")
    reply = await final_reply(bot, ann.id, mark)
    assert '"**wow**"' in reply.text, reply.text


@pytest.mark.parametrize(
    ("lang", "ask", "parroted", "instruction"),
    [
        ("en", "how do I download it?", "click the Export button", "Tap 🎬 Export below"),
        ("zh", "怎么导出", "点击右上角", "点下面的“🎬 导出”"),
    ],
)
async def test_the_agents_editor_instructions_become_telegrams(
    make_bot: HarnessFactory, lang: str, ask: str, parroted: str, instruction: str
) -> None:
    bot, ann = await bot_with_a_project(make_bot, 1805, lang)
    api = bot.api
    mark = len(api.sent(ann.id))
    api.send_text(ann, ask)
    reply = await final_reply(bot, ann.id, mark)
    assert parroted not in reply.text
    assert reply.text.count(instruction) == 1, reply.text
    assert [b.get("callback_data") for b in reply.buttons] == ["a:export"]
    assert api.videos(ann.id) == []
    api.press(ann, reply, "a:export")
    await api.wait_for(lambda: api.videos(ann.id), 40, "the video the button exported")
