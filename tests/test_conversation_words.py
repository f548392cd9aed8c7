"""What people expect of the conversation in any front end: stop words, a cancel that says
what really happened, links with words, an unchanged project's video offered again, and
Traditional Chinese."""

from __future__ import annotations

import asyncio

import opencc
import pytest

from bot.conversation.text import is_cancel_word, pick_lang
from bot.io import SendText, Stream
from bot.texts import LANGS, TEXTS, normalize_lang, script_lang, t
from tests.conversation_fixtures import Harness, HarnessFactory, quick_sim_config


def test_stop_words_are_whole_messages_only() -> None:
    for word in ("stop", "Stop!", "取消", "停止", " cancel "):
        assert is_cancel_word(word), word
    for text in ("stop the music", "取消背景音乐", "don't stop"):
        assert not is_cancel_word(text), text


@pytest.mark.parametrize("word", ["stop", "取消"])
async def test_a_stop_word_stops_a_streaming_answer_and_says_what_goes_on(
    make_harness: HarnessFactory, word: str
) -> None:
    h = await make_harness(sim_config=quick_sim_config(chunk_delay_s=0.2, chunk_words=1))
    await h.say("/start")
    job = h.later("make a 5 second video of a pier")
    await h.out.wait_for(lambda op: isinstance(op, Stream) and not op.final, timeout=20)
    lang = "zh" if word == "取消" else "en"
    mark = len(h.out.ops)
    await h.say(word, lang=lang)
    await asyncio.wait_for(job, 20)
    said = h.out.joined(mark)
    # The reply language follows the stop word; the job's own turn was English.
    assert t("stopped_chat", "en") in said or t("stopped_chat", "zh") in said, said
    assert "may still finish this edit" in said or "可能仍会在服务器上完成" in said
    assert t("stopped", "en") not in said and t("stopped", "zh") not in said


async def test_cancelling_an_export_still_says_it_was_stopped(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(sim_config=quick_sim_config(render_seconds=30))
    await h.say("make a 5 second video of a pier")
    job = h.later("/export")
    await h.out.wait_for(lambda op: "Rendering" in getattr(op, "text", ""), timeout=20)
    while not (await h.state()).pending:  # the render is started and followed
        await asyncio.sleep(0.05)
    mark = len(h.out.ops)
    await h.say("stop")
    await asyncio.wait_for(job, 20)
    assert t("export_cancelled", "en") in h.out.joined(mark), h.out.ops[mark - 3 :]


async def test_a_cancel_while_the_render_starts_stops_that_render(
    make_harness: HarnessFactory,
) -> None:
    """The render being started when /cancel comes is cancelled once it exists, not left
    running (and charged) behind a "Stopped"."""
    h = await make_harness(sim_config=quick_sim_config(render_seconds=30))
    await h.say("make a 5 second video of a pier")
    h.sim.set_fault("slow", seconds=1.5, path="/api/render/proxy/lambda", times=1)
    job = h.later("/export")
    await h.out.wait_for(lambda op: "Rendering" in getattr(op, "text", ""), timeout=20)
    mark = len(h.out.ops)
    await h.say("stop")
    await asyncio.wait_for(job, 20)
    said = h.out.joined(mark)
    assert t("export_cancelled", "en") in said and t("stopped", "en") not in said
    cancels = [r for r in h.sim.requests_to("/cancel") if r.method == "POST"]
    assert len(cancels) == 1
    assert (await h.state()).pending == []


async def test_a_stopped_answer_reports_the_project_as_it_stands(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(sim_config=quick_sim_config(chunk_delay_s=0.2, chunk_words=1))
    await h.say("make a 5 second video of a pier")
    job = h.later("make a 5 second video of a beach")
    await h.out.wait_for(lambda op: isinstance(op, Stream) and "beach" in op.text, timeout=20)
    mark = len(h.out.ops)
    await h.say("/cancel")
    await asyncio.wait_for(job, 20)
    said = h.out.joined(mark)
    assert t("stopped_chat", "en") in said
    assert "📋 The project right now: Timeline" in said and "pier" in said


async def test_upload_link_with_words_keeps_the_words(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    texts = await h.say("/upload https://example.test/clip.mp4 add a title saying hello")
    joined = "\n".join(texts)
    assert "📥 Got 1 file:\n• clip.mp4: video" in joined
    assert "Next, try" not in joined, "the words are the next step"
    assert len(h.sim.requests_to("/run_sse")) == 1, "the words went to the agent"
    assert [op for op in h.out.streams() if op.final], "and the agent answered them"


async def test_exporting_an_unchanged_project_offers_the_video_already_made(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    await h.say("make a 5 second video of a pier")
    await h.say("/export")
    first = h.out.videos()
    assert len(first) == 1
    renders = renders_started(h)
    mark = len(h.out.ops)
    await h.say("/export")
    again = h.out.videos(mark)
    assert [v.url for v in again] == [first[0].url]
    assert again[0].caption == t("export_unchanged", "en")
    assert renders_started(h) == renders, "no new render"
    # Asked once more, it is rendered anew; after a change, too.
    await h.say("/export")
    assert renders_started(h) > renders


async def test_a_changed_project_is_rendered_again(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 5 second video of a pier")
    await h.say("/export")
    renders = renders_started(h)
    await h.say("make another 5 second video of a beach")
    mark = len(h.out.ops)
    await h.say("/export")
    assert renders_started(h) > renders
    assert [v.caption for v in h.out.videos(mark)] == [t("export_caption", "en")]


def test_traditional_chinese_texts_come_from_the_simplified_ones() -> None:
    assert "zh-hant" in LANGS
    assert normalize_lang("zh-TW") == normalize_lang("zh-Hant") == "zh-hant"
    assert normalize_lang("zh-CN") == normalize_lang("zh") == "zh"
    assert script_lang("讓這張照片動起來") == "zh-hant"
    assert script_lang("让这张照片动起来") == "zh"
    assert t("export_caption", "zh-hant") == "你的影片做好了 🎉"
    assert t("lang_set", "zh-hant") == "語言已設為繁體中文。"
    assert "「" in t("welcome", "zh-hant") and "“" not in t("welcome", "zh-hant")
    to_traditional = opencc.OpenCC("s2t")
    for key in TEXTS:
        hant = t(key, "zh-hant")
        assert hant and to_traditional.convert(hant) == hant, f"{key}: {hant}"


def test_the_script_decides() -> None:
    assert pick_lang(stored=None, locked=False, language_code="zh-cn", text="做一個影片") == (
        "zh-hant"
    )
    assert pick_lang(stored=None, locked=False, language_code="en", text="做一个视频") == "zh"
    assert pick_lang(stored="zh-hant", locked=False, language_code="zh-tw", text="/status") == (
        "zh-hant"
    )
    assert pick_lang(stored="zh-hant", locked=True, language_code="en", text="做一个视频") == (
        "zh-hant"
    )


async def test_traditional_chinese_replies(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    texts = await h.say("做一個5秒的碼頭影片", lang=None)
    joined = "\n".join(texts)
    assert "我可以陪你聊著天做影片" in joined
    assert "📋 當前時間線：\n時間線（1 條軌道）：1. 影片" in joined
    progress = [op.text for op in h.out.progress()]
    assert "⚙️ 正在準備…" in progress and "✅ 準備好了！" in progress
    assert (await h.state()).lang == "zh-hant"
    status = "\n".join(await h.say("/status", lang=None))
    assert "📋 時間線（1 條軌道）" in status and "滿意的話：/export 匯出" in status


async def test_lang_zh_hant(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    assert await h.say("/lang zh-hant") == ["語言已設為繁體中文。"]
    credits = await h.say("/credits")
    assert credits == ["💳 積分：可用 100 · 凍結 0 · 總計 100"]
    await h.say("/lang en")
    assert isinstance(h.out.ops[-1], SendText)
    assert (await h.state()).lang == "en"


@pytest.mark.parametrize(
    ("spelling", "lang"),
    [
        ("zh-CN", "zh"),
        ("zh_SG", "zh"),
        ("简体中文", "zh"),
        ("簡體", "zh"),
        ("zh-Hant-HK", "zh-hant"),
        ("zh-TW", "zh-hant"),
        ("繁体中文", "zh-hant"),
        ("Traditional", "zh-hant"),
        ("English", "en"),
        ("英語", "en"),
    ],
)
async def test_lang_takes_the_spellings_people_use(
    make_harness: HarnessFactory, spelling: str, lang: str
) -> None:
    h = await make_harness()
    assert await h.say(f"/lang {spelling}") == [t("lang_set", lang)]
    state = await h.state()
    assert (state.lang, state.lang_locked) == (lang, True)


async def test_lang_refuses_what_it_does_not_speak(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    assert await h.say("/lang fr") == [t("lang_usage", "en")]
    assert (await h.state()).lang_locked is False


def test_help_names_every_language() -> None:
    for lang in LANGS:
        assert "zh-hant" in t("help", lang) and "zh-hant" in t("lang_usage", lang)


def renders_started(h: Harness) -> int:
    return sum(
        1
        for r in h.sim.requests_to("/api/render/proxy/lambda")
        if r.method == "POST" and r.path.endswith("/lambda")
    )


async def test_the_timeline_names_each_clip(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 5 second video of a pier")
    await h.say("make a 3 second video of a beach")
    status = "\n".join(await h.say("/status"))
    assert "1. Video: pier (0-5s), beach (5-8s)" in status, status
    assert "(+1)" not in status
    zh = "\n".join(await h.say("/status", lang="zh"))
    assert "视频：pier (0-5秒)，beach (5-8秒)" in zh, zh


@pytest.mark.parametrize("text", ["你好", "好的", "可以", "加一首歌"])
def test_a_message_both_scripts_write_alike_keeps_the_chats_chinese(text: str) -> None:
    assert script_lang(text) == "zh" and script_lang(text, "zh-hant") == "zh-hant"
    for stored, code in (("zh-hant", "zh-tw"), (None, "zh-hant"), ("zh-hant", None)):
        assert pick_lang(stored=stored, locked=False, language_code=code, text=text) == "zh-hant"
    assert pick_lang(stored="zh", locked=False, language_code="zh-tw", text=text) == "zh"
    assert pick_lang(stored=None, locked=False, language_code="en", text=text) == "zh"


async def test_a_traditional_chinese_chat_saying_hello_stays_traditional(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    await h.say("做一個5秒的碼頭影片", lang="zh-TW")
    assert (await h.state()).lang == "zh-hant"
    await h.say("你好", lang="zh-TW")
    assert (await h.state()).lang == "zh-hant"
    status = "\n".join(await h.say("/status", lang="zh-TW"))
    assert "時間線" in status, status
