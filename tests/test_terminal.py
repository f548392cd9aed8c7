"""The terminal chat: `nemobot chat` as a subprocess, and its parts in-process."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import time
from pathlib import Path

import httpx

from backend import Credentials
from backend.sim import sample_mp4
from bot.io import Button, Progress, SendText, SendVideo, Stream
from bot.store import PendingExport, RedisChatStore
from bot.terminal import (
    TerminalChat,
    TerminalOutbox,
    WriterScreen,
    parse_upload,
    terminal_language,
)
from bot.terminal.render import render_text
from bot.texts import t
from tests.conversation_fixtures import HarnessFactory, png_bytes
from tests.terminal_fixtures import run_chat


def saved_videos(stdout: str) -> list[Path]:
    return [Path(p) for p in re.findall(r"(?:Video saved|视频已保存)[:：] ?(\S+\.mp4)", stdout)]


def test_offline_session_through_a_pipe(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(png_bytes(64, 48))
    result = run_chat(
        [
            "/start",
            "/credits",
            "/upload cat.png",
            "animate this photo into a 5 second video",
            "/status",
            "/export",
            "/credits",
        ],
        tmp_path,
        "--offline",
        "--download-dir",
        str(tmp_path / "videos"),
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in out + result.stderr
    assert "⚙️ Setting things up…" in out and "✅ Ready!" in out
    credits = re.findall(r"💳 Credits: (\d+) available · (\d+) reserved · (\d+) total", out)
    assert credits == [("100", "0", "100"), ("90", "0", "90")], out
    assert f"📥 Got 1 file:\n• cat.png: image (64×48, {len(png_bytes(64, 48))} B)" in out
    assert "Generated a 5s clip: cat." in out
    assert "📋 Timeline (1 track): 1. Video: cat (0-5s)" in out
    assert "🎬 Rendering… 0% (0:00)" in out and "✅ Rendered in 0:0" in out
    assert "Here's your video 🎉" in out
    videos = saved_videos(out)
    assert len(videos) == 1
    assert videos[0].parent == (tmp_path / "videos").resolve()
    assert videos[0].read_bytes() == sample_mp4()
    # Plain text, one reply after another: no cursor tricks and no interim edits.
    assert "\x1b[" not in out and "\r" not in out
    assert out.count("Generated a 5s clip") == 1
    assert "Offline mode: using the built-in simulator" in result.stderr


def test_offline_session_in_chinese(tmp_path: Path) -> None:
    (tmp_path / "猫.png").write_bytes(png_bytes(32, 32))
    result = run_chat(
        ["/upload 猫.png", "让这张照片动起来，做成6秒视频", "/status", "导出", "查看积分"],
        tmp_path,
        "--offline",
        "--lang",
        "zh",
        "--download-dir",
        str(tmp_path),
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "⚙️ 正在准备…" in out and "✅ 准备好了！" in out
    assert "📥 收到 1 个文件：\n• 猫.png：图片 (32×32" in out
    assert "已生成 6 秒的视频片段" in out
    assert "📋 时间线（1 条轨道）：1. 视频" in out and "(0-6秒)" in out
    assert "你的视频做好了 🎉" in out
    assert "💳 积分：可用 90 · 冻结 0 · 总计 90" in out
    videos = saved_videos(out)
    assert len(videos) == 1 and videos[0].read_bytes()[4:8] == b"ftyp"


def test_locale_decides_the_language(tmp_path: Path) -> None:
    result = run_chat(["/credits"], tmp_path, "--offline", env={"LANG": "zh_CN.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert "💳 积分：可用 100 · 冻结 0 · 总计 100" in result.stdout


def test_unreachable_api_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    result = run_chat(["hello"], tmp_path, env={"NEMO_API_BASE": url})
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"Cannot reach the NemoVideo API at {url} (ConnectError). "
        "To use the built-in simulator instead: `nemobot chat --offline`, "
        'or `make run ARGS="chat --offline"` from the source folder.'
    ]
    assert "Traceback" not in result.stderr
    chinese = run_chat(["你好"], tmp_path, env={"NEMO_API_BASE": url, "LANG": "zh_TW.UTF-8"})
    assert chinese.returncode == 1
    assert 'make run ARGS="chat --offline"' in chinese.stdout
    assert "改用內建模擬器" in chinese.stdout


def test_help_names_the_terminals_commands_and_a_typo_is_one_line(tmp_path: Path) -> None:
    result = run_chat(["/help", "/foo bar", "/Stats", "/credits"], tmp_path, "--offline")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert t("term_help", "en") in out and t("help", "en") not in out
    assert "/upload PATH… [message]" in out and "/quit – leave" in out
    assert out.count("/export – ") == 1, "the help once, for /help only"
    assert "Unknown command /foo; /help lists the commands.\n" in out
    assert "Unknown command /Stats; /help lists the commands.\n" in out
    assert "💳 Credits: 100 available" in out
    assert "Setting things up" not in out, "a typo is not sent to the agent"


async def test_the_chats_help_becomes_the_terminals_in_each_language(tmp_path: Path) -> None:
    buffer = io.StringIO()
    async with httpx.AsyncClient() as http:
        box = TerminalOutbox(screen=WriterScreen(buffer.write), http=http, download_dir=tmp_path)
        for lang in ("en", "zh", "zh-hant"):
            await box.send(SendText(t("help", lang)))
    helps = buffer.getvalue().split("\n\n")
    assert helps[:3] == [t("term_help", lang) for lang in ("en", "zh", "zh-hant")]
    assert all("/upload" in text and "/quit" in text for text in helps[:3])
    assert "檔案" in helps[2] and "文件" in helps[1], "Traditional made from Simplified"
    assert "/quit" not in t("help", "en") and "/upload" not in t("help", "en"), "Telegram's"


def test_upload_missing_file_usage_and_url(tmp_path: Path) -> None:
    result = run_chat(["/upload nope.png", "/upload"], tmp_path, "--offline")
    assert result.returncode == 0, result.stderr
    assert "No such file: nope.png" in result.stdout
    assert "Usage: /upload PATH [PATH…] [message]" in result.stdout
    assert "Setting things up" not in result.stdout, "nothing was sent to the agent"
    result = run_chat(["/upload https://example.test/clip.mp4"], tmp_path, "--offline")
    assert result.returncode == 0, result.stderr
    assert "📥 Got 1 file:\n• clip.mp4: video" in result.stdout


def test_parse_upload(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    b = tmp_path / "my clip.mp4"
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    files, text, missing = parse_upload(f'{a} "{b}" animate it please')
    assert files == [a, b] and text == "animate it please" and missing == []
    files, text, missing = parse_upload(f"{tmp_path}/gone.jpg {a}")
    assert files == [a] and missing == [f"{tmp_path}/gone.jpg"] and text == ""
    files, text, missing = parse_upload("https://example.test/v.mp4")
    assert files == [] and missing == [] and text == "https://example.test/v.mp4"


def test_terminal_language() -> None:
    assert terminal_language({"LANG": "zh_CN.UTF-8"}) == "zh-cn"
    assert terminal_language({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN"}) == "en-us"
    assert terminal_language({"LANG": "C.UTF-8"}) is None
    assert terminal_language({}) is None


async def test_interactive_rendering_keeps_what_changes_live(tmp_path: Path) -> None:
    """Progress and a streaming answer stay live (drawn above the prompt, redrawn in place);
    only finished messages are printed, the agent's Markdown rendered."""
    shown: list[str] = []
    async with httpx.AsyncClient() as http:
        screen = WriterScreen(shown.append, interactive=True, width=60)
        box = TerminalOutbox(screen=screen, http=http, download_dir=tmp_path)
        await box.send(Progress("work-1", "🎬 Generating video…"))
        await box.send(Stream("reply-1", "## Plan\n**Step"))
        assert box.status_lines() == ["🎬 Generating video…"]
        assert box.answer_so_far() == "## Plan\n**Step" and box.answering
        assert shown == [], "nothing is printed while it changes"
        reply = "## Plan\n**Step 1:** film the pier\nthen `/export`"
        await box.send(Stream("reply-1", reply, final=True, buttons=(Button("E", "a:export"),)))
        await box.send(Progress("work-1", "✓ Done", done=True))
        await box.send(SendText("💳 Credits: 1 available · 0 reserved · 1 total"))
    assert box.status_lines() == [] and box.answer_so_far() == "" and not box.answering
    assert len(shown) == 2, shown
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown[0])
    assert "##" not in plain and "**" not in plain and "`" not in plain
    assert "Plan" in plain and "Step 1: film the pier" in plain
    assert plain.index("film the pier") < plain.index("then /export"), "line breaks kept"
    assert "\x1b[1m" in shown[0], "bold is bold"
    assert "→ /export" not in shown[0], "no button line for a command the text names"
    assert shown[1] == "💳 Credits: 1 available · 0 reserved · 1 total\n\n"


async def test_terminal_words_and_no_doubled_lines(tmp_path: Path) -> None:
    buffer = io.StringIO()
    async with httpx.AsyncClient() as http:
        box = TerminalOutbox(screen=WriterScreen(buffer.write), http=http, download_dir=tmp_path)
        export = (Button(t("btn_export", "en"), "a:export"),)
        await box.send(Stream("r", f"Done.\n\n{t('gui_export', 'en')}", final=True, buttons=export))
        await box.send(SendText(f"📋 x\n\n{t('status_hint', 'en')}", buttons=export))
        await box.send(Progress("export-1", "🎬 Rendering… 0% (0:00)"))
        await box.send(Progress("export-1", t("export_failed_line", "en"), done=True))
        await box.send(SendText(t("render_failed", "en", detail="")))
    out = buffer.getvalue()
    assert "Tap" not in out and "👉 Type /export when you're ready" in out
    assert "→ /export" not in out, "the command is in the text already"
    assert "❌ Render failed" not in out and out.count("❌") == 1


async def test_plain_rendering_prints_finished_messages_only(tmp_path: Path) -> None:
    buffer = io.StringIO()
    async with httpx.AsyncClient() as http:
        box = TerminalOutbox(screen=WriterScreen(buffer.write), http=http, download_dir=tmp_path)
        await box.send(Stream("s", "Hel"))
        await box.send(Stream("s", "## Hello.", final=True))
        await box.send(Progress("r", "🎬 Rendering… 0% (0:00)"))
        await box.send(Progress("r", "🎬 Rendering… 50% (0:01)"))
        await box.send(Progress("r", "✅ Rendered in 0:02.", done=True))
        await box.send(SendText("link", buttons=(Button("Register", url="https://x.test/r"),)))
        await box.send(SendVideo(path="/tmp/v.mp4", caption="Here's your video 🎉"))
    assert buffer.getvalue() == (
        "## Hello.\n\n🎬 Rendering… 0% (0:00)\n\n✅ Rendered in 0:02.\n\n"
        "link\nRegister: https://x.test/r\n\nHere's your video 🎉\n\n"
        "🎬 Video saved: /tmp/v.mp4\n\n"
    )


async def test_end_of_input_waits_for_a_resumed_export(
    make_harness: HarnessFactory, redis_store: RedisChatStore, tmp_path: Path
) -> None:
    """A terminal chat started with an export in flight delivers it before exiting."""
    h = await make_harness()
    await h.say("make a 5 second video of a pier")
    state = await h.state()
    api = h.app.client.bind(
        Credentials(
            token=await h.token(), client_id=state.client_id, expires_at=None, anonymous=True
        )
    )
    job = await api.start_export(state.session_id or "", state.last_draft or {})
    pending = PendingExport(render_id=job.id, started_at=time.time(), lang="en")
    await redis_store.add_pending(h.chat_id, pending)
    other = PendingExport(render_id="render_of_a_telegram_chat", started_at=1.0)
    await redis_store.add_pending(777, other)

    fresh = await make_harness(sim=h.sim)
    buffer = io.StringIO()
    screen = WriterScreen(buffer.write)
    box = TerminalOutbox(screen=screen, http=fresh.app.http, download_dir=tmp_path / "dl")
    chat = TerminalChat(
        fresh.conv, box, stdin=io.StringIO(""), interactive=False, chat_id=h.chat_id
    )
    assert await asyncio.wait_for(chat.run(), 20) == 0
    assert len(box.saved) == 1 and box.saved[0].read_bytes() == sample_mp4()
    assert f"🎬 Video saved: {box.saved[0]}" in buffer.getvalue()
    assert (await redis_store.load(h.chat_id)).pending == []
    # Exports of other chats sharing the store are not the terminal's to deliver.
    assert await redis_store.chats_with_work() == [777]


def test_bot_text_wraps_between_words_and_chinese_is_left_to_the_terminal() -> None:
    english = render_text("Credits are kept between sessions of the chat", 20)
    assert [line.rstrip() for line in english.splitlines()] == [
        "Credits are kept",
        "between sessions of",
        "the chat",
    ]
    chinese = "⏹ 我已停止接收智能体的回答。智能体可能仍会在服务器上完成这次编辑"
    assert render_text(chinese, 20) == chinese, "no break after the first word"
