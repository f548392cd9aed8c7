"""The pieces around the conversation: texts, language choice, wiring, and several replicas
sharing one chat through the store's lock."""

from __future__ import annotations

import asyncio
import string
import time
from pathlib import Path

import pytest

from backend import UploadLimits
from bot.app import build_app, build_store, client_config
from bot.conversation.text import asks_for_export, command_of, pick_lang, tool_hint
from bot.io import Inbound, Stream, button_action
from bot.settings import load_settings
from bot.store import RedisChatStore
from bot.texts import TEXTS, fmt_size, fmt_span, t
from tests.conversation_fixtures import HarnessFactory

MB = 1024 * 1024


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_text_exists_in_both_languages_with_the_same_placeholders() -> None:
    for key, (en, zh) in TEXTS.items():
        assert en.strip() and zh.strip(), key
        assert fields(en) == fields(zh), key
        assert en != zh or key in ("status",), f"{key} is not translated"


def test_t_fills_and_falls_back_to_english() -> None:
    amounts = {"available": 1, "frozen": 2, "total": 3}
    assert t("credits", "zh-CN", **amounts) == "💳 积分：可用 1 · 冻结 2 · 总计 3"
    assert t("credits", "zh-TW", **amounts) == "💳 積分：可用 1 · 凍結 2 · 總計 3"
    assert t("credits", None, available=1, frozen=2, total=3).startswith("💳 Credits: 1")
    assert t("credits", "fr", available=1, frozen=2, total=3).startswith("💳 Credits: 1")


def test_language_choice() -> None:
    pick = pick_lang
    assert pick(stored=None, locked=False, language_code="zh-hans", text="hello there") == "zh"
    assert pick(stored=None, locked=False, language_code="en", text="做一个视频") == "zh"
    assert pick(stored="zh", locked=False, language_code="en", text="make a cat video") == "en"
    assert pick(stored="zh", locked=False, language_code=None, text="ok") == "zh", "too short"
    assert pick(stored="zh", locked=False, language_code=None, text="/export") == "zh"
    assert pick(stored="en", locked=True, language_code="zh", text="做一个视频") == "en"
    assert pick(stored=None, locked=False, language_code=None, text="") == "en"


def test_small_helpers() -> None:
    assert command_of("/lang@NemoBot zh") == ("lang", "zh")
    assert command_of("/export") == ("export", "")
    assert command_of("/ not a command") is None and command_of("hello") is None
    assert button_action("a:export") == "export" and button_action("a:drop") is None
    assert fmt_size(25 * MB) == "25.0 MB" and fmt_size(2048) == "2 KB" and fmt_size(5) == "5 B"
    assert tool_hint("generate_video", "en") == "🎬 Generating video…"
    assert tool_hint("edit_multitrack", "zh") == "✂️ 正在编辑时间线…"
    assert tool_hint("mystery", "en") == "⚙️ Working…"
    assert asks_for_export("looks great, then export it")
    assert not asks_for_export("how do I export?")


async def test_is_control(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    conv = h.conv

    def msg(text: str = "", button: str | None = None) -> Inbound:
        return Inbound(chat_id=1, user_id=1, text=text, callback_data=button)

    for text in ("/cancel", "/credits", "/status", "/help", "/lang zh", "查看积分"):
        assert conv.is_control(msg(text)), text
    for button in ("a:status", "a:credits"):
        assert conv.is_control(msg(button=button)), button
    for button in ("a:export", "a:new"):  # they start a job: it waits its turn, unhurried
        assert not conv.is_control(msg(button=button)), button
    for text in ("/export", "/new", "/start", "make a video", "export it"):
        assert not conv.is_control(msg(text)), text


def test_client_config_from_settings() -> None:
    settings = load_settings(
        nemo_api_base="http://127.0.0.1:9",
        nemo_token="nmv_usr_operator_secret_1",
        skill_platform=None,
        rate_limit_wait_s=3,
        chat_timeout_s=99,
        max_image_mb=2,
        max_video_mb=3,
        max_audio_mb=4,
    )
    config = client_config(settings, "terminal")
    assert config.base_url == "http://127.0.0.1:9" and config.platform == "terminal"
    assert config.operator_token == "nmv_usr_operator_secret_1"
    assert config.rate_limit_wait == 3 and config.chat_timeout == 99
    assert config.limits == UploadLimits(2 * MB, 3 * MB, 4 * MB)
    assert "secret" not in repr(config)
    assert client_config(load_settings(skill_platform="web"), "telegram").platform == "web"


async def test_store_choice(redis_url: str) -> None:
    redis = build_store(load_settings(redis_url=redis_url))
    assert isinstance(redis, RedisChatStore) and await redis.ping()
    await redis.aclose()
    with pytest.raises(ValueError, match="REDIS_URL"):
        build_store(load_settings(redis_url=None))


async def test_app_without_redis_url_runs_on_the_embedded_server(tmp_path: Path) -> None:
    settings = load_settings(redis_url=None, nemo_token=None, data_dir=tmp_path / "data")
    app = build_app(settings, "telegram")
    try:
        assert app.client.http is app.http
        assert app.client.config.platform == "telegram"
        assert isinstance(app.store, RedisChatStore) and await app.store.ping()
        assert (tmp_path / "data" / "redis.sock").is_socket()
    finally:
        await app.aclose()
    assert not (tmp_path / "data" / "redis.sock").exists(), "the server stopped with the app"


async def test_two_replicas_take_turns_on_one_chat(make_harness: HarnessFactory) -> None:
    """Replica A's long job keeps the chat's lock (renewed past its TTL); a message that
    reaches replica B meanwhile is answered at once, goes into the chat's shared inbox,
    and is run by A, the lock's holder, when its job is done."""
    a = await make_harness(lock_ttl_s=0.6)
    await a.conv.resume_pending(lambda _chat: a.out)
    await a.say("/start")
    b = await make_harness(sim=a.sim, lock_ttl_s=0.6)
    a.sim.set_fault("quiet_stream", seconds=2.0, every=0.2)
    job_a = a.later("make a 5 second video of a lighthouse")
    await a.out.wait_for(lambda op: isinstance(op, Stream) or "Progress" in type(op).__name__)
    await asyncio.sleep(0.9)  # longer than the lock's TTL: only renewal keeps it
    started = time.monotonic()
    await asyncio.wait_for(b.say('add a title "Beacon"'), 1.5)
    assert time.monotonic() - started < 1.5, "B answers at once and leaves the job to A"
    assert b.out.texts() == [
        "⏳ Still working on your previous request. Your message is queued and comes next; "
        "/cancel to stop."
    ]
    # /cancel reaching B cannot stop A's stream, and says so rather than "nothing runs".
    b_cancel = await b.say("/cancel")
    await asyncio.wait_for(job_a, 20)
    beacon = await a.out.wait_for(
        lambda op: isinstance(op, Stream) and op.final and "Beacon" in op.text, 20
    )
    finals = [s.text for s in a.out.streams() if s.final]
    assert "Generated a 5s clip" in finals[-2], "A's own job came first"
    assert isinstance(beacon, Stream) and 'Added the title "Beacon"' in finals[-1]
    assert b_cancel == [
        "⏳ I'm in the middle of a step that can't be stopped from here; it ends shortly."
    ]
    assert len(a.sim.requests_to("/run_sse")) == 2


def test_a_configured_time_is_said_as_configured() -> None:
    assert [fmt_span(s, "en") for s in (0.8, 45, 60, 90, 900, 3600)] == [
        "0.8 s",
        "45 s",
        "1 min",
        "1 min 30 s",
        "15 min",
        "60 min",
    ]
    assert fmt_span(90, "zh") == "1分钟 30秒"
