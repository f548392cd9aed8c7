"""Whole sessions through the conversation module: simulator over HTTP, state in Redis."""

from __future__ import annotations

import re

import httpx
import pytest

from backend.sim import sample_mp4
from bot.conversation.text import export_notes
from bot.io import Button, Progress, SendText, Stream
from router import ExportOptions
from tests.conversation_fixtures import FileStub, HarnessFactory, png_bytes


def credits_of(text: str) -> tuple[int, int, int]:
    numbers = re.findall(r"\d+", text)
    assert len(numbers) == 3, text
    available, frozen, total = (int(n) for n in numbers)
    return available, frozen, total


async def test_full_session_in_english(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    out = h.out

    texts = await h.say("/start")
    setup = out.progress()
    assert [p.text for p in setup] == ["⚙️ Setting things up…", "✅ Ready!"]
    assert setup[0].ref == setup[1].ref and setup[1].done
    assert "Things to try" in texts[0] and "animate this photo" in texts[0]
    state = await h.state()
    assert state.session_id and state.task_id and state.token and state.lang == "en"
    assert h.sim.session(state.session_id) is not None
    assert not any(state.token in text for text in out.texts())

    assert credits_of((await h.say("/credits"))[0]) == (100, 0, 100)

    photo = FileStub("cat.png", "image/png", png_bytes(64, 48))
    texts = await h.say(files=(photo,))
    assert photo.reads == 1
    assert texts == [
        f"📥 Got 1 file:\n• cat.png: image (64×48, {len(photo.data)} B)\n\n"
        "Next, try “animate this photo” or “make a 10-second video from it”."
    ]

    mark = len(out.ops)
    texts = await h.say("animate this photo into a 5 second video")
    streams = out.streams(mark)
    assert len({s.ref for s in streams}) == 1, "one streaming message"
    assert len(streams) > 2 and streams[-1].final
    assert "Generated a 5s clip: cat" in streams[-1].text
    # Partial texts grow; nothing is shown twice.
    assert streams[-1].text.count("Generated a 5s clip") == 1
    hints = [p.text for p in out.progress(mark)]
    assert "🎬 Generating video…" in hints
    assert "Timeline (1 track): 1. Video" in texts[-1]  # "preview in timeline" answered
    assert any(b.data == "a:export" for b in streams[-1].buttons)

    texts = await h.say("/status")
    assert texts[0].startswith("📋 Timeline (1 track): 1. Video")
    assert "(0-5s)" in texts[0]
    assert credits_of((await h.say("/credits"))[0]) == (90, 0, 90)

    mark = len(out.ops)
    await h.say("/export")
    renders = out.progress(mark)
    assert renders[0].text.startswith("🎬 Rendering… 0%")
    assert len({p.ref for p in renders}) == 1 and renders[-1].done
    assert renders[-1].text.startswith("✅ Rendered in")
    percents = [int(m.group(1)) for p in renders if (m := re.search(r"(\d+)%", p.text))]
    assert percents == sorted(percents), [p.text for p in renders]
    videos = out.videos(mark)
    assert len(videos) == 1 and videos[0].caption == "Here's your video 🎉"
    assert videos[0].url
    async with httpx.AsyncClient() as http:
        body = (await http.get(videos[0].url)).content
    assert body == sample_mp4() and body[4:8] == b"ftyp"
    state = await h.state()
    assert state.pending == []
    assert state.last_draft and state.last_draft["t"]
    assert credits_of((await h.say("/credits"))[0]) == (85, 0, 85)


async def test_full_session_in_chinese(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    out = h.out
    texts = await h.say("/start", lang="zh-hans")
    assert [p.text for p in out.progress()] == ["⚙️ 正在准备…", "✅ 准备好了！"]
    assert "试试这些" in texts[0]
    state = await h.state()
    assert state.lang == "zh"
    assert h.sim.session(state.session_id).language.startswith("zh")

    assert "可用 100" in (await h.say("/credits", lang="zh-hans"))[0]
    photo = FileStub("猫.png", "image/png", png_bytes(32, 32))
    texts = await h.say(files=(photo,), lang="zh-hans")
    assert texts[0].startswith("📥 收到 1 个文件")
    assert "猫.png：图片" in texts[0] and "让这张照片动起来" in texts[0]

    mark = len(out.ops)
    texts = await h.say("让这张照片动起来，做成8秒视频", lang="zh-hans")
    final = out.streams(mark)[-1]
    assert final.final and "已生成 8 秒的视频片段" in final.text
    assert "🎬 正在生成视频…" in [p.text for p in out.progress(mark)]

    texts = await h.say("/status", lang="zh-hans")
    assert texts[0].startswith("📋 时间线（1 条轨道）：1. 视频")
    assert "(0-8秒)" in texts[0]
    assert "可用 90" in (await h.say("/credits", lang="zh-hans"))[0]

    mark = len(out.ops)
    await h.say("导出", lang="zh-hans")
    renders = out.progress(mark)
    assert renders[0].text.startswith("🎬 渲染中… 0%") and renders[-1].text.startswith(
        "✅ 渲染完成"
    )
    video = out.videos(mark)[0]
    assert video.caption == "你的视频做好了 🎉"
    assert [b.label for b in video.buttons] == ["🆕 新项目", "💳 积分"]
    assert "可用 85" in (await h.say("/credits", lang="zh-hans"))[0]


async def test_language_follows_messages_and_lang_overrides(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start", lang="en")
    # English Telegram, Chinese message: the reply is Chinese.
    texts = await h.say("查看积分", lang="en")
    assert texts == ["💳 积分：可用 100 · 冻结 0 · 总计 100"]
    texts = await h.say("how many credits do I have", lang="en")
    assert texts == ["💳 Credits: 100 available · 0 reserved · 100 total"]
    assert (await h.say("/lang zh", lang="en")) == ["语言已设为中文。"]
    texts = await h.say("how many credits do I have", lang="en")
    assert texts[0].startswith("💳 积分")
    assert (await h.state()).lang_locked
    assert (await h.say("/lang en", lang="zh")) == ["Language set to English."]
    assert (await h.say("/credits", lang="zh-cn"))[0].startswith("💳 Credits")
    assert (await h.say("/lang auto"))[0] == "I'll reply in the language you write in."
    assert (await h.say("/lang klingon")) == [
        "Usage: /lang en, /lang zh, /lang zh-hant or /lang auto."
    ]


async def test_no_text_turn_reports_the_draft_diff(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 6 second video of a city at night")
    before = (await h.state()).last_draft
    assert before and len(before["t"]) == 1
    h.sim.config.no_text_every = 1  # every edit turn now ends without a word
    mark = len(h.out.ops)
    texts = await h.say('add a title "Urban Dreams"')
    assert not [s for s in h.out.streams(mark) if s.text.strip()]
    assert len(texts) == 1 and texts[0].startswith("✅ Done. What changed:\nAdded Title")
    assert "Urban Dreams" in texts[0] and "(0-3s)" in texts[0]
    after = (await h.state()).last_draft
    assert after and len(after["t"]) == 2
    texts = await h.say("add lo-fi music")
    assert texts[0].startswith("✅ Done. What changed:") and "BGM" in texts[0]


async def test_upload_intent_by_url_and_without(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    texts = await h.say("upload a file")
    assert texts[0].startswith("Send me the file here")
    assert "mp4" in texts[0] and "images 20 MB" in texts[0]
    url = f"{h.sim.base_url}/media/demo.mp4"
    texts = await h.say(f"upload {url}")
    assert texts[0].startswith("📥 Got 1 file:") and "video" in texts[0]
    assert "add background music" in texts[0]


async def test_several_files_are_one_upload(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    files = (
        FileStub("a.png", "image/png", png_bytes(10, 10)),
        FileStub("b.png", "image/png", png_bytes(20, 10)),
        FileStub("song.mp3", "audio/mpeg", b"ID3" + b"\x00" * 2000),
    )
    texts = await h.say(files=files)
    assert len(h.sim.requests_to("/api/upload-video/")) == 1
    assert texts[0].startswith("📥 Got 3 files:")
    assert "a.png: image (10×10" in texts[0] and "b.png: image (20×10" in texts[0]
    assert "song.mp3: audio" in texts[0]


async def test_attachment_with_caption_runs_the_caption(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    photo = FileStub("dog.png", "image/png", png_bytes())
    mark = len(h.out.ops)
    texts = await h.say("animate this photo", files=(photo,))
    assert texts[1].startswith("📥 Got 1 file:") and "Next, try" not in texts[1]
    assert "Generated a 5s clip: dog" in h.out.streams(mark)[-1].text


async def test_gui_export_is_offered_as_a_button(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 4 second video of waves")
    mark = len(h.out.ops)
    await h.say("how do I download it?")
    final = h.out.streams(mark)[-1]
    # The agent's "click the Export button" is rewritten in place into what works here.
    assert final.final and "click the Export button" not in final.text
    assert final.text.count("/export") == 1
    assert "👉 Type /export when you're ready and I'll render it here." in final.text
    assert final.buttons == (Button("🎬 Export", data="a:export"),)
    assert not h.out.videos(mark) and not h.sim.requests_to("/api/render/")
    mark = len(h.out.ops)
    await h.say(button="a:export")
    assert len(h.out.videos(mark)) == 1, "the export button exports"


async def test_gui_export_runs_when_the_user_asked(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 4 second video of waves")
    mark = len(h.out.ops)
    texts = await h.say("looks good, then export")
    assert "click the Export button" not in texts[0]
    assert texts[0].endswith("🎬 Exporting as you asked…")
    assert len(h.out.videos(mark)) == 1
    assert (await h.state()).pending == []


async def test_nothing_to_export_yet(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    texts = await h.say("/export")
    assert texts == [
        "There's nothing to export yet: the timeline is empty. Send a photo or video, "
        "or describe the video you'd like, then /export again."
    ]
    assert not h.sim.requests_to("/api/render/")
    assert (await h.say("/status"))[0].startswith("📋 Your project is empty so far")


async def test_new_project_and_help(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 3 second clip of rain")
    first = (await h.state()).session_id
    texts = await h.say("/new")
    assert texts == [
        "🆕 New project started. Send a photo or video, or describe the video you want."
    ]
    state = await h.state()
    assert state.session_id != first and state.last_draft is None
    assert (await h.say("/status"))[0].startswith("📋 Your project is empty")
    help_text = (await h.say("/help"))[0]
    for command in ("/export", "/status", "/credits", "/new", "/cancel", "/lang"):
        assert command in help_text
    assert (await h.say("/start"))[0].startswith("Welcome back!")


async def test_buttons_are_validated(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    assert await h.say("", button="a:rm -rf") == []
    assert await h.say("", button="x:export") == []
    assert (await h.say("", button="a:credits"))[0].startswith("💳 Credits: 100")


async def test_duplicate_updates_are_answered_once(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    msg = h.inbound("/credits")
    msg = type(msg)(**{**msg.__dict__, "update_id": 424242})
    await h.conv.handle(msg, h.out)
    await h.conv.handle(msg, h.out)
    assert len([t for t in h.out.texts() if t.startswith("💳")]) == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_replies_never_leak_tokens_or_json(make_harness: HarnessFactory, lang: str) -> None:
    h = await make_harness()
    await h.say("make a 3 second clip of snow", lang=lang)
    await h.say("/status", lang=lang)
    token = await h.token()
    for op in h.out.ops:
        text = getattr(op, "text", "") or getattr(op, "caption", "")
        assert token not in text and "nmv_" not in text
        assert '{"' not in text and "Traceback" not in text
    assert all(isinstance(op, SendText | Stream | Progress) or op for op in h.out.ops)


async def test_attachment_with_a_command_caption(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    texts = await h.say("/export", files=(FileStub("sky.png", "image/png", png_bytes()),))
    assert texts[0].startswith("📥 Got 1 file:\n• sky.png: image")
    assert texts[1].startswith("There's nothing to export yet")


def test_export_notes_say_what_only_the_project_decides() -> None:
    vertical = (1080, 1920)
    # What the project already is needs no word; the file format is always MP4.
    assert export_notes(ExportOptions(aspect="9:16", resolution="1080p"), vertical, "en") == []
    assert export_notes(ExportOptions(quality="high"), vertical, "en") == []
    (line,) = export_notes(ExportOptions(aspect="16:9", resolution="2160p"), vertical, "en")
    assert "1080×1920" in line and "“make it landscape (16:9) 4K”" in line
    (line,) = export_notes(ExportOptions(aspect="1:1"), None, "zh")
    assert "项目里设定的尺寸" in line and "“改成方形（1:1）”" in line
    (line,) = export_notes(ExportOptions(format="gif"), vertical, "en")
    assert "MP4" in line and "GIF" in line


async def test_export_options_are_set_or_said(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 4 second video of waves")  # the simulator's canvas: 1080×1920
    mark = len(h.out.ops)
    texts = await h.say("export 4k landscape in low quality")
    assert texts[0].startswith("📐 The video comes out at the project's canvas, 1080×1920.")
    assert "“make it landscape (16:9) 4K”" in texts[0]
    assert len(h.out.videos(mark)) == 1
    (render,) = h.sim.world.renders.values()
    assert render.quality == "low", "what the export call can set is set"
    mark = len(h.out.ops)
    texts = await h.say("/export vertical")
    assert not any(text.startswith("📐") for text in texts), "the canvas already is vertical"
    assert len(h.out.videos(mark)) == 1
