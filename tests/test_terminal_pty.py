"""The interactive terminal chat as a person uses it: a real pseudo-terminal, keys typed one
by one, and the screen read through a terminal emulator."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.sim import SimConfig
from tests.terminal_fixtures import Terminal, chat_env, sim_thread

REPLY = "📋 The timeline now:"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@pytest.fixture
def slow_sim() -> Iterator[str]:
    """Answers stream word by word over a few seconds; renders take long."""
    config = SimConfig(chunk_delay_s=0.3, chunk_words=1, no_text_every=0, render_seconds=60)
    with sim_thread(config) as url:
        yield url


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for term in opened:
        term.close()


def start(terminals: list[Terminal], cwd: Path, url: str, *args: str, **env: str) -> Terminal:
    term = Terminal(cwd, chat_env(cwd, NEMO_API_BASE=url, **env), *args)
    terminals.append(term)
    term.wait_for(lambda s: "Ctrl-D" in s and s.endswith("›"))
    return term


@pytest.fixture
def mid_answer(tmp_path: Path, slow_sim: str, terminals: list[Terminal]) -> Terminal:
    """A terminal whose answer is streaming: shown above the prompt, not yet finished."""
    term = start(terminals, tmp_path, slow_sim)
    term.type("make a 5 second video of a pier\r")
    term.wait_for(lambda s: "Done!" in s and "timeline." not in s)
    return term


def test_typing_while_an_answer_streams(mid_answer: Terminal) -> None:
    term = mid_answer
    term.type("and add some music")
    assert term.last_line() == "› and add some music"
    screen = term.wait_for(lambda s: REPLY in s and "Export → /export" in s)
    assert term.last_line() == "› and add some music", "the typed text is intact"
    lines = [line for line in term.screen() if line]
    reply_at = next(i for i, line in enumerate(lines) if REPLY in line)
    assert reply_at < len(lines) - 1, "the prompt comes after the reply"
    assert screen.count(REPLY) == 1
    assert "WARNING" not in screen and "Traceback" not in screen, "logs stay out of the chat"
    term.type("\r")
    term.wait_for(lambda s: "music" in s.split("› and add some music", 1)[-1])
    term.type("\x1b[A")  # ↑ brings back what was sent
    term.wait_for(lambda s: s.endswith("› and add some music"))


def test_ctrl_c_stops_the_answer_then_leaves(mid_answer: Terminal) -> None:
    term = mid_answer
    term.type("\x03")
    screen = term.wait_for(lambda s: "I stopped following the agent's answer" in s)
    assert "may still finish this edit" in screen and "/status" in screen
    assert "(stopped)" in screen, "the answer so far is kept, marked as cut"
    assert "⏹ Stopped." not in screen
    assert "(Ctrl-C again, /quit or Ctrl-D leaves.)" in screen
    term.wait_for(lambda s: s.endswith("›"))
    term.type("\x03")
    term.wait_for(lambda s: "👋 Bye." in s)
    assert term.exit_status() == 0


def test_ctrl_c_clears_a_half_typed_line_and_leaves_on_an_empty_one(
    tmp_path: Path, slow_sim: str, terminals: list[Terminal]
) -> None:
    term = start(terminals, tmp_path, slow_sim)
    term.type("make a video of")
    term.type("\x03")
    term.wait_for(lambda s: s.endswith("›"))
    assert term.child.isalive() and "Bye" not in term.text(), "a typed line is not a leave"
    term.type("/credits\r")
    screen = term.wait_for(lambda s: "💳 Credits: 100 available" in s)
    assert "make a video of" not in screen, "the cleared words were not sent"
    term.type("\x03")
    term.wait_for(lambda s: "👋 Bye." in s)
    assert term.exit_status() == 0


def test_a_line_sent_while_something_is_live_leaves_no_stale_copy(
    tmp_path: Path, slow_sim: str, terminals: list[Terminal]
) -> None:
    term = start(terminals, tmp_path, slow_sim)
    term.type("make a 5 second video of a pier\r")
    term.wait_for(lambda s: "Done!" in s and "timeline" not in s)
    term.type("/credits\r")
    term.wait_for(lambda s: "💳 Credits: " in s)
    term.wait_for(lambda s: REPLY in s)
    term.type("/export\r")
    term.wait_for(lambda s: "🎬 Rendering… 0% (0:00)" in s)
    term.type("/credits\r")
    screen = term.wait_for(lambda s: s.count("💳 Credits: ") == 2)
    lines = [line for line in term.screen() if line]
    live = [line for line in lines if line[:1] in SPINNER]
    assert live == [lines[-2]], f"the live line, above the prompt only:\n{screen}"
    assert "Rendering" in live[0] and screen.count("Rendering") == 1
    assert screen.count("Done!") == 1, "the answer, finished, once"
    assert lines[-1] == "›"


def test_chinese_session_and_quit(tmp_path: Path, slow_sim: str, terminals: list[Terminal]) -> None:
    term = start(terminals, tmp_path, slow_sim, LANG="zh_CN.UTF-8")
    term.type("查看积分\r")
    term.wait_for(lambda s: "💳 积分：可用 100 · 冻结 0 · 总计 100" in s)
    term.type("/lang zh-hant\r")
    term.wait_for(lambda s: "語言已設為繁體中文。" in s)
    term.type("/quit\r")
    term.wait_for(lambda s: "👋 再見。你的專案已儲存" in s)
    assert term.exit_status() == 0


def test_quit_and_restart_finds_everything_again(tmp_path: Path, terminals: list[Terminal]) -> None:
    """No configuration: the project, the credits and an export in flight outlive a quit."""
    config = SimConfig(no_text_every=0, render_seconds=8)
    with sim_thread(config) as url:
        term = start(terminals, tmp_path, url)
        term.type("make a 5 second video of a pier\r")
        term.wait_for(lambda s: REPLY in s)
        term.type("/export\r")
        term.wait_for(lambda s: "🎬 Rendering…" in s)
        term.type("/quit\r")
        term.wait_for(lambda s: "👋 Bye. Your export goes on rendering" in s)
        assert term.exit_status() == 0

        again = subprocess.run(
            [sys.executable, "-m", "bot", "chat"],
            input="/credits\n/status\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=chat_env(tmp_path, NEMO_API_BASE=url),
            timeout=90,
            check=False,
        )
    assert again.returncode == 0, again.stderr
    out = again.stdout
    assert "💳 Credits: 90 available" in out, out
    assert "1. Video: pier (0-5s)" in out
    saved = re.findall(r"🎬 Video saved: (\S+\.mp4)", out)
    assert len(saved) == 1 and Path(saved[0]).read_bytes()[4:8] == b"ftyp"
    assert "Setting things up" not in out, "the same account and project, not new ones"
