"""Helpers for the terminal tests: `nemobot chat` on a real pseudo-terminal, read through a
terminal emulator (the screen as a person sees it), and a simulator on its own thread so
the test may block on the terminal while answers stream."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pyte

from backend.sim import SimConfig, Simulator
from tests.process_fixtures import REPO, clean_env

__all__ = ["REPO", "Terminal", "chat_env", "run_chat", "sim_thread"]

COLS, ROWS = 100, 40


def chat_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no configuration, the data directory under `home`."""
    env = clean_env(
        "LC_",
        "LANG",
        "XDG_",
        LANG="C.UTF-8",
        TERM="xterm",
        XDG_DATA_HOME=str(home / "data"),
        # The emulator does not answer cursor-position requests; do not wait for them.
        PROMPT_TOOLKIT_NO_CPR="1",
    )
    return env | extra


def run_chat(
    lines: list[str], cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`nemobot chat` through pipes, one line of input a message, to its end."""
    base = clean_env(
        "LC_",
        "LANG",
        "LOG_",
        LANG="C.UTF-8",
        PYTHONIOENCODING="utf-8",
        XDG_DATA_HOME=str(cwd / "data"),
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", "chat", *args],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=base | (env or {}),
        timeout=90,
        check=False,
    )


class Terminal:
    """`nemobot chat` on a pseudo-terminal; `screen()` is what a person would see."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self._screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self._screen)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "bot", "chat", *args],
            cwd=str(cwd),
            env=env,
            dimensions=(ROWS, COLS),
        )

    def pump(self, seconds: float = 0.05) -> None:
        """Feed what the program printed meanwhile into the emulator."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.02)
                self._stream.feed(data)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return
            if time.monotonic() >= deadline:
                return

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self._screen.display]

    def text(self) -> str:
        return "\n".join(line for line in self.screen() if line)

    def wait_for(self, found: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            text = self.text()
            if found(text):
                return text
        raise AssertionError(f"not on the screen in {timeout}s:\n{self.text()}")

    def type(self, keys: str, pause: float = 0.03) -> None:
        """Key by key, like a person."""
        for key in keys:
            self.child.send(key)
            self.pump(pause)

    def last_line(self) -> str:
        return [line for line in self.screen() if line][-1]

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.child.isalive() and time.monotonic() < deadline:
            self.pump()
        self.pump()
        self.child.close()
        assert self.child.exitstatus is not None, "still running"
        return int(self.child.exitstatus)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@contextmanager
def sim_thread(config: SimConfig) -> Iterator[str]:
    """A simulator serving from its own thread and event loop; yields its URL."""
    loop = asyncio.new_event_loop()
    sim = Simulator(config)
    started = threading.Event()
    url: list[str] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        url.append(loop.run_until_complete(sim.start()))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "the simulator did not start"
    try:
        yield url[0]
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
