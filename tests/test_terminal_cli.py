"""`nemobot` from a shell: ordinary mistakes get one clear line and a non-zero exit, and
the small things people expect of a command line work."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.sim import SimConfig
from bot.cli.chat import language
from bot.cli.main import build_parser
from tests.conversation_fixtures import png_bytes
from tests.fake_botapi import FakeBotApi
from tests.terminal_fixtures import REPO, Terminal, chat_env, sim_thread


def nemobot(
    *args: str, cwd: Path, stdin: bytes = b"", timeout: float = 90, **env: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=chat_env(cwd, **env),
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sim_url() -> Iterator[str]:
    with sim_thread(SimConfig(no_text_every=0, render_seconds=1)) as url:
        yield url


def test_version(tmp_path: Path) -> None:
    result = nemobot("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert re.fullmatch(r"nemobot \d+\.\d+\.\d+\S*", result.stdout.strip())


def test_a_dead_redis_url_is_one_line(tmp_path: Path) -> None:
    dead = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    chat = nemobot("chat", "--offline", cwd=tmp_path, REDIS_URL=dead)
    assert chat.returncode == 1
    line = one_line(chat.stderr.replace(chat.stderr.splitlines()[0] + "\n", "", 1))
    assert line.startswith("nemobot chat: cannot reach Redis at redis://:***@127.0.0.1")
    assert "hunter2" not in chat.stderr + chat.stdout
    run = nemobot("run", cwd=tmp_path, REDIS_URL=dead, TELEGRAM_BOT_TOKEN="1:abcdefghijklmnop")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("nemobot run: cannot reach Redis at")
    assert "Traceback" not in run.stderr and "hunter2" not in run.stderr


def test_sim_on_a_busy_or_impossible_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = nemobot("sim", "--port", str(port), cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(f"nemobot sim: cannot listen on 127.0.0.1:{port} (")
    result = nemobot("sim", "--port", "70000", cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("70000 is out of range (0-65535)")


async def test_a_rejected_or_unreachable_telegram_token(tmp_path: Path) -> None:
    wrong = "123456789:AAWrongTokenWrongTokenWrongToken1234"
    async with FakeBotApi() as api:
        result = await _async_nemobot(
            "run", cwd=tmp_path, TELEGRAM_BOT_TOKEN=wrong, TELEGRAM_API_BASE=api.base_url
        )
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line == (
        "nemobot run: Telegram rejected the bot token 123456789:…1234; check TELEGRAM_BOT_TOKEN"
    )
    base = f"http://127.0.0.1:{closed_port()}/bot"
    result = await _async_nemobot(
        "run", cwd=tmp_path, TELEGRAM_BOT_TOKEN=wrong, TELEGRAM_API_BASE=base
    )
    assert result.returncode == 1
    assert one_line(result.stderr) == f"nemobot run: cannot reach Telegram at {base} (ConnectError)"
    assert "AAWrongToken" not in result.stderr


async def _async_nemobot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`nemobot` while this test's event loop serves the fake Bot API."""
    import asyncio

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=chat_env(cwd, **env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


def test_an_unwritable_download_folder_is_found_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = nemobot("chat", "--offline", "--download-dir", str(blocker / "videos"), cwd=tmp_path)
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(f"nemobot chat: cannot save videos in {blocker}")
    assert "Offline mode" not in result.stderr, "found before anything started"


def test_text_that_is_not_utf8_is_read_with_replacement(tmp_path: Path, sim_url: str) -> None:
    result = nemobot("chat", cwd=tmp_path, stdin=b"caf\xe9\n/credits\n", NEMO_API_BASE=sim_url)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "💳 Credits: 100 available" in result.stdout


def test_logs_stay_out_of_the_chat_unless_asked(tmp_path: Path, sim_url: str) -> None:
    quiet = nemobot("chat", cwd=tmp_path, stdin=b"/credits\n", NEMO_API_BASE=sim_url)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert (tmp_path / "data" / "nemobot" / "nemobot.log").exists()
    loud = nemobot("chat", "-v", cwd=tmp_path, stdin=b"/credits\n", NEMO_API_BASE=sim_url)
    assert loud.returncode == 0
    assert "message handled" in loud.stderr and "message handled" not in loud.stdout
    # The start-up check that the API answers is not a backend call (nor a failed one).
    assert "backend call backend_call=GET /api/credits" in loud.stderr
    assert "backend_call=GET / " not in loud.stderr and "outcome=404" not in loud.stderr


def test_an_unknown_language_is_refused(tmp_path: Path) -> None:
    result = nemobot("chat", "--offline", "--lang", "fr", cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("argument --lang: unknown language 'fr': use en, zh or zh-hant")
    )
    assert "Offline mode" not in result.stderr, "refused before anything started"


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("en", "en"),
        ("ZH", "zh"),
        ("zh-hant", "zh-hant"),
        ("zh_TW", "zh-tw"),
        ("zh-HK", "zh-hk"),
        ("zh-cn", "zh-cn"),
        ("zh-Hans", "zh-hans"),
        ("en-US", "en-us"),
        ("tw", "zh-hant"),
        ("繁體", "zh-hant"),
        ("中文", "zh"),
        ("english", "en"),
    ],
)
def test_lang_takes_the_spellings_of_slash_lang(given: str, code: str) -> None:
    assert language(given) == code


@pytest.mark.parametrize("given", ["fr", "", "auto", "zhx", "english-us", "de-zh"])
def test_lang_refuses_other_languages(given: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        language(given)


def test_a_traditional_lang_option_is_traditional(tmp_path: Path, sim_url: str) -> None:
    result = nemobot(
        "chat", "--lang", "tw", cwd=tmp_path, stdin=b"/credits\n", NEMO_API_BASE=sim_url
    )
    assert result.returncode == 0, result.stderr
    assert "💳 積分：" in result.stdout


def test_quit_ends_a_piped_session(tmp_path: Path, sim_url: str) -> None:
    result = nemobot(
        "chat", cwd=tmp_path, stdin=b"/credits\n/quit\n/status\n", NEMO_API_BASE=sim_url
    )
    assert result.returncode == 0
    assert "💳 Credits" in result.stdout and "📋" not in result.stdout


def test_upload_a_path_with_spaces(tmp_path: Path, sim_url: str) -> None:
    (tmp_path / "my cat photo.png").write_bytes(png_bytes(16, 16))
    result = nemobot(
        "chat",
        cwd=tmp_path,
        stdin=b"/upload my cat photo.png animate it\n",
        NEMO_API_BASE=sim_url,
    )
    assert result.returncode == 0, result.stderr
    assert "• my cat photo.png: image (16×16" in result.stdout
    assert "No such file" not in result.stdout


def test_offline_placeholder_video_is_said_once(tmp_path: Path) -> None:
    result = nemobot(
        "chat",
        "--offline",
        "--download-dir",
        str(tmp_path / "videos"),
        cwd=tmp_path,
        stdin="\n".join(
            [
                "make a 5 second video of a pier",
                "/export",
                "make another 5 second video of a beach",
                "/export",
                "",
            ]
        ).encode(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("🎬 Video saved") == 2
    assert result.stdout.count("always a 1-second placeholder") == 1


def test_plain_flag_on_a_terminal(tmp_path: Path, sim_url: str) -> None:
    term = Terminal(tmp_path, chat_env(tmp_path, NEMO_API_BASE=sim_url), "--plain")
    try:
        term.type("/credits\r")
        screen = term.wait_for(lambda s: "💳 Credits: 100 available" in s)
        assert "›" not in screen, "no line editor"
        term.child.sendeof()
        assert term.exit_status() == 0
    finally:
        term.close()


def test_the_readme_shows_sessions_in_both_languages() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "› make a 5 second video of a pier" in quickstart
    assert "› 做一个5秒的码头视频" in quickstart
    # The timeline is a paragraph of its own, as the chat prints it.
    assert "Generated a 5s clip: pier.\n\n📋 The timeline now:\n" in quickstart
    assert "已生成 5 秒的视频片段：码头。\n\n📋 当前时间线：\n" in quickstart


@pytest.mark.parametrize("command", ["chat", "sim"])
def test_the_readme_lists_every_option(command: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| `nemobot {command} "))
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    options = [
        action.option_strings
        for action in subparsers.choices[command]._actions
        if action.option_strings and action.dest != "help"
    ]
    missing = [o for o in options if not any(f"[{name}" in row for name in o)]
    assert options and missing == []
