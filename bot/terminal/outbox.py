"""The conversation's operations as terminal output.

Finished messages are printed once, as blocks. What is still changing (an answer being
streamed, a progress line) is live: an interactive screen draws it just above the prompt
and redraws it in place, so it never runs into what the user types; a plain screen (a
pipe, or `--plain`) shows only finished messages and the first line of each progress.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from bot.io import ChatAction, Outbound, Progress, SendText, SendVideo, Stream
from bot.terminal.render import (
    buttons_line,
    render_markdown,
    render_text,
    terminal_words,
    unechoed,
)
from bot.texts import script_lang, t

__all__ = ["Screen", "TerminalOutbox", "WriterScreen"]

_CJK = re.compile(r"[\u3400-\u9fff]")


class Screen(Protocol):
    """Where the outbox's output goes."""

    @property
    def interactive(self) -> bool:
        """Live lines are drawn (and the agent's Markdown rendered)."""

    @property
    def width(self) -> int:
        """Columns to render in."""

    def show(self, block: str) -> None:
        """Print a finished message once, above whatever is live."""

    def refresh(self) -> None:
        """The live lines changed: draw them again."""


@dataclass
class WriterScreen:
    """Finished messages written to a stream, one blank line after each (pipes, tests)."""

    write: Callable[[str], object]
    interactive: bool = False
    width: int = 80

    def show(self, block: str) -> None:
        self.write(block + "\n\n")

    def refresh(self) -> None:
        return


@dataclass
class TerminalOutbox:
    """Renders operations on a `Screen`; downloads finished videos into `download_dir`.
    `offline` says the videos are the simulator's placeholder (told once)."""

    screen: Screen
    http: httpx.AsyncClient
    download_dir: Path
    lang: str = "en"
    offline: bool = False
    saved: list[Path] = field(default_factory=list)
    _streams: dict[str, str] = field(default_factory=dict)
    _progress: dict[str, str] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    _placeholder_told: bool = False
    _count: int = 0

    async def send(self, op: Outbound) -> None:
        if isinstance(op, SendText):
            self.lang = self._lang_of(op.text, fallback="en")  # the chat's, for our own words
            self.say(op.text, buttons_line(op.buttons, terminal_words(op.text)))
        elif isinstance(op, Stream):
            self._stream(op)
        elif isinstance(op, Progress):
            self._show_progress(op)
        elif isinstance(op, SendVideo):
            await self._video(op)
        elif isinstance(op, ChatAction):
            return

    # --- what is live ---------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        """The progress lines still changing (interactive screens draw them)."""
        return list(self._progress.values())

    def answer_so_far(self) -> str:
        """The answer being streamed, as it stands (interactive screens draw it)."""
        return "\n\n".join(self._streams.values())

    @property
    def answering(self) -> bool:
        """An answer of the agent is being streamed or worked on (not an export)."""
        return bool(self._streams) or any(not ref.startswith("export") for ref in self._progress)

    @property
    def exporting(self) -> bool:
        return any(ref.startswith("export") for ref in self._progress)

    # --- rendering ------------------------------------------------------------------------

    def say(self, text: str, extra: str = "", *, markdown: bool = False) -> None:
        """Print one finished message (and a line of commands under it)."""
        text = terminal_words(text).rstrip()
        block = text + (f"\n{extra}" if extra else "")
        if not self.screen.interactive:
            self.screen.show(block)
        elif markdown:
            width = self.screen.width
            rendered = render_markdown(text, width)
            self.screen.show(rendered + (f"\n{render_text(extra, width)}" if extra else ""))
        else:
            self.screen.show(render_text(block, self.screen.width))

    def _stream(self, op: Stream) -> None:
        if op.ref in self._finished:
            return
        if not op.final:
            self._streams[op.ref] = op.text
            self.screen.refresh()
            return
        self._finished.add(op.ref)
        self._streams.pop(op.ref, None)
        self.say(op.text, buttons_line(op.buttons, terminal_words(op.text)), markdown=True)
        self.screen.refresh()

    def _show_progress(self, op: Progress) -> None:
        if op.ref in self._finished:
            return
        if op.done:
            self._finished.add(op.ref)
            self._progress.pop(op.ref, None)
            if unechoed(op.text):
                self.say(op.text)
            self.screen.refresh()
            return
        first = op.ref not in self._progress
        if self._progress.get(op.ref) == op.text:
            return
        self._progress[op.ref] = op.text
        if self.screen.interactive:
            self.screen.refresh()
        elif first or op.text.startswith("⏳"):
            self.say(op.text)

    async def _video(self, op: SendVideo) -> None:
        lang = self._lang_of(op.caption)
        if op.caption:
            self.say(op.caption)
        if op.path:
            self.say(t("term_saved", lang, path=op.path), buttons_line(op.buttons, ""))
        elif op.url:
            try:
                path = await self.download(op.url)
            except (httpx.HTTPError, OSError) as exc:
                reason = type(exc).__name__
                failed = t("term_save_failed", lang, reason=reason, url=op.url)
                self.say(failed, buttons_line(op.buttons, ""))
                return
            self.saved.append(path)
            self.say(t("term_saved", lang, path=str(path)), buttons_line(op.buttons, ""))
        if self.offline and not self._placeholder_told:
            self._placeholder_told = True
            self.say(t("term_offline_video", lang))

    def _lang_of(self, text: str, fallback: str | None = None) -> str:
        """The language of one of the bot's texts: Chinese (in its script) or else
        `fallback`, by default the chat's as last seen."""
        if _CJK.search(text):
            return script_lang(text)
        return fallback or self.lang

    async def download(self, url: str) -> Path:
        """Save the video under the download folder with a name that does not collide."""
        self.download_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self._count += 1
        path = self.download_dir / f"nemobot-{stamp}-{self._count}.mp4"
        partial = path.with_suffix(".part")
        async with self.http.stream("GET", url, follow_redirects=True, timeout=120) as response:
            response.raise_for_status()
            # The disk is written from a worker thread: a slow disk never stalls the chat.
            fh = await asyncio.to_thread(partial.open, "wb")
            try:
                async for chunk in response.aiter_bytes():
                    await asyncio.to_thread(fh.write, chunk)
            finally:
                await asyncio.to_thread(fh.close)
        await asyncio.to_thread(partial.replace, path)
        return path.resolve()
