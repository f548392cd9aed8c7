"""The terminal chat: the same conversation as Telegram, in a terminal or a pipe.

Interactive when standard input is a terminal (line editing, the reply appearing as it
streams, a spinner on the progress line). Otherwise line by line: each input line is one
message, each finished reply is printed as plain text, and it exits at end of input once
all work has finished, so operators can script it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import mimetypes
import os
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from bot.conversation import Conversation
from bot.io import (
    Attachment,
    Button,
    ChatAction,
    Inbound,
    Outbound,
    Progress,
    SendText,
    SendVideo,
    Stream,
    button_action,
)
from bot.texts import TEXTS, normalize_lang, t

__all__ = ["TerminalChat", "TerminalOutbox", "is_tty", "parse_upload", "terminal_language"]

_CJK = re.compile(r"[\u3400-\u9fff]")
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_CLEAR = "\r\x1b[K"
# Closing a progress line with a bare "done" says nothing new in a terminal.
_GENERIC_DONE = frozenset(TEXTS["progress_done"])


def terminal_language(environ: dict[str, str] | None = None) -> str | None:
    """The user's language from the locale variables, as Telegram would report it."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return value.split(".", 1)[0].replace("_", "-").lower()
    return None


@dataclass
class _Line:
    """What has been printed of one streaming message or progress line."""

    text: str = ""
    done: bool = False


@dataclass
class TerminalOutbox:
    """Renders the conversation's operations as text; downloads finished videos."""

    out: TextIO
    http: httpx.AsyncClient
    download_dir: Path
    interactive: bool = False
    lang: str = "en"
    _streams: dict[str, _Line] = field(default_factory=dict)
    _progress: dict[str, _Line] = field(default_factory=dict)
    _status: str = ""
    _status_ref: str | None = None
    _drawn: bool = False
    _open_stream: str | None = None
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    saved: list[Path] = field(default_factory=list)

    async def send(self, op: Outbound) -> None:
        if isinstance(op, SendText):
            self._message(op.text, op.buttons)
        elif isinstance(op, Stream):
            self._stream(op)
        elif isinstance(op, Progress):
            self._show_progress(op)
        elif isinstance(op, SendVideo):
            await self._video(op)
        elif isinstance(op, ChatAction):
            return

    # --- rendering ---------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _clear_status(self) -> None:
        """Wipe the drawn progress line (interactive); the status itself stays pending."""
        if self.interactive and self._drawn:
            self._write(_CLEAR)
            self._drawn = False

    def _close_stream(self) -> None:
        """End a reply that is still growing on the current line, before anything else."""
        if self._open_stream is not None:
            self._write("\n")
            self._open_stream = None

    def _message(self, text: str, buttons: tuple[Button, ...] = ()) -> None:
        self._clear_status()
        self._close_stream()
        lines = [text.rstrip()]
        extra = _buttons_line(buttons, text)
        if extra:
            lines.append(extra)
        self._write("\n".join(lines) + "\n\n")
        self._redraw()

    def _stream(self, op: Stream) -> None:
        line = self._streams.setdefault(op.ref, _Line())
        if line.done:
            return
        if not self.interactive:
            if op.final:
                line.done = True
                self._message(op.text, op.buttons)
            return
        self._clear_status()
        if self._open_stream not in (None, op.ref):
            self._close_stream()
        if op.text.startswith(line.text):
            self._write(op.text[len(line.text) :])
        else:
            self._write("\n" + op.text)
        line.text = op.text
        self._open_stream = op.ref
        if op.final:
            line.done = True
            self._open_stream = None
            extra = _buttons_line(op.buttons, op.text)
            self._write("\n" + (extra + "\n" if extra else "") + "\n")
            self._redraw()

    def _show_progress(self, op: Progress) -> None:
        line = self._progress.get(op.ref)
        first = line is None
        if line is None:
            line = self._progress[op.ref] = _Line()
        if line.done or line.text == op.text:
            return
        line.text = op.text
        if op.done:
            line.done = True
            if self._status_ref == op.ref:
                self._clear_status()
                self._status = ""
                self._status_ref = None
            if op.text not in _GENERIC_DONE:
                self._message(op.text)
            return
        if self.interactive:
            self._status, self._status_ref = op.text, op.ref
            self._redraw()
        elif first or op.text.startswith("⏳"):
            self._message(op.text)

    def _redraw(self) -> None:
        """Draw the progress line, unless a reply is being written on the current line."""
        if self.interactive and self._status and self._open_stream is None:
            self._write(f"{_CLEAR}{self._status}")
            self._drawn = True

    def tick(self, frame: int) -> None:
        """Animate the spinner on the progress line (interactive only)."""
        if self.interactive and self._status and self._open_stream is None:
            spin = _SPINNER[frame % len(_SPINNER)]
            self._write(f"{_CLEAR}{spin} {self._status}")
            self._drawn = True

    async def _video(self, op: SendVideo) -> None:
        lang = "zh" if _CJK.search(op.caption) else self.lang
        if op.caption:
            self._message(op.caption)
        if op.path:
            self._message(t("term_saved", lang, path=op.path), op.buttons)
            return
        if not op.url:
            return
        try:
            path = await self.download(op.url)
        except (httpx.HTTPError, OSError) as exc:
            reason = type(exc).__name__
            self._message(t("term_save_failed", lang, reason=reason, url=op.url), op.buttons)
            return
        self.saved.append(path)
        self._message(t("term_saved", lang, path=str(path)), op.buttons)

    async def download(self, url: str) -> Path:
        """Save the video under the download folder with a name that does not collide."""
        self.download_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.download_dir / f"nemobot-{stamp}-{next(self._counter)}.mp4"
        partial = path.with_suffix(".part")
        async with self.http.stream("GET", url, follow_redirects=True, timeout=120) as response:
            response.raise_for_status()
            with partial.open("wb") as fh:
                async for chunk in response.aiter_bytes():
                    fh.write(chunk)
        partial.replace(path)
        return path.resolve()


_COMMAND_OF_ACTION = {
    "export": "/export",
    "status": "/status",
    "credits": "/credits",
    "new": "/new",
}


def _buttons_line(buttons: tuple[Button, ...], text: str) -> str:
    """Buttons as the commands that do the same thing, and links that are not yet shown."""
    parts: list[str] = []
    for button in buttons:
        if button.url:
            if button.url not in text:
                parts.append(f"{button.label}: {button.url}")
            continue
        action = button_action(button.data)
        if action:
            parts.append(f"{button.label} → {_COMMAND_OF_ACTION[action]}")
    return "   ".join(parts)


def parse_upload(arg: str) -> tuple[list[Path], str, list[str]]:
    """`/upload a.jpg "my clip.mp4" animate it` → (files, text, missing paths).

    Leading words that look like paths are files; the rest is the message."""
    try:
        words = shlex.split(arg)
    except ValueError:
        words = arg.split()
    files: list[Path] = []
    missing: list[str] = []
    rest_from = len(words)
    for i, word in enumerate(words):
        if word.startswith(("http://", "https://")):
            rest_from = i
            break
        path = Path(word).expanduser()
        if path.is_file():
            files.append(path)
        elif "." in word or "/" in word or os.sep in word:
            missing.append(word)
        else:
            rest_from = i
            break
    return files, " ".join(words[rest_from:]), missing


def _attachment(path: Path) -> Attachment:
    mime, _ = mimetypes.guess_type(path.name)

    async def read() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return Attachment(name=path.name, mime=mime, size=path.stat().st_size, read=read)


class TerminalChat:
    """Reads lines, hands them to the conversation as one chat, renders the answers."""

    def __init__(
        self,
        conversation: Conversation,
        outbox: TerminalOutbox,
        *,
        stdin: TextIO,
        interactive: bool,
        chat_id: int = 0,
        language_code: str | None = None,
    ) -> None:
        self.conversation = conversation
        self.outbox = outbox
        self.stdin = stdin
        self.interactive = interactive
        self.chat_id = chat_id
        self.language_code = language_code
        self._tasks: set[asyncio.Task[None]] = set()
        self._lang = normalize_lang(language_code)

    def message(self, line: str) -> Inbound | None:
        """The inbound message for one input line (None for blank lines)."""
        text = line.strip()
        if not text:
            return None
        attachments: tuple[Attachment, ...] = ()
        if text.split(maxsplit=1)[0].lower() == "/upload":
            arg = text[len("/upload") :].strip()
            files, rest, missing = parse_upload(arg)
            for path in missing:
                self.outbox._message(t("term_no_file", self._lang, path=path))
            if not files:
                if not missing and not rest.startswith(("http://", "https://")):
                    self.outbox._message(t("term_upload_usage", self._lang))
                    return None
                if not rest:
                    return None
                return self._inbound(f"/upload {rest}")
            attachments = tuple(_attachment(p) for p in files)
            text = rest
        return self._inbound(text, attachments)

    def _inbound(self, text: str, attachments: tuple[Attachment, ...] = ()) -> Inbound:
        return Inbound(
            chat_id=self.chat_id,
            user_id=self.chat_id,
            text=text,
            language_code=self.language_code,
            attachments=attachments,
        )

    async def run(self) -> int:
        """Until end of input; then wait for every job (exports included) to finish."""
        await self.conversation.resume_pending(lambda _chat: self.outbox, only={self.chat_id})
        if self.interactive:
            await self._interactive()
        else:
            await self._plain()
        await self.conversation.wait_idle()
        return 0

    async def _plain(self) -> None:
        lines = _LineReader(self.stdin.readline)
        while (line := await lines.next()) is not None:
            msg = self.message(line)
            if msg is not None:
                await self.conversation.handle(msg, self.outbox)

    async def _interactive(self) -> None:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        self.outbox._message(t("term_banner", self._lang))
        spinner = asyncio.create_task(self._spin())
        lines = _LineReader(lambda: _prompt("› "))
        try:
            while (line := await lines.next()) is not None:
                msg = self.message(line)
                if msg is None:
                    continue
                task = asyncio.create_task(self.conversation.handle(msg, self.outbox))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self.outbox._write("\n")
            if self._tasks:
                await asyncio.wait(set(self._tasks))
        finally:
            spinner.cancel()

    async def _spin(self) -> None:
        for frame in itertools.count():
            self.outbox.tick(frame)
            await asyncio.sleep(0.12)


def _prompt(prompt: str) -> str:
    """One line from the user with line editing; "" at end of input."""
    try:
        return input(prompt) + "\n"
    except EOFError:
        return ""


class _LineReader:
    """Reads lines on a daemon thread, so a blocked read never keeps the process alive
    (Ctrl-C exits at once) and the event loop keeps streaming replies meanwhile."""

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read
        self._loop = asyncio.get_running_loop()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._wanted = threading.Semaphore(0)
        threading.Thread(target=self._pump, name="terminal-input", daemon=True).start()

    def _pump(self) -> None:
        while True:
            self._wanted.acquire()
            try:
                line = self._read()
            except (OSError, ValueError):
                line = ""
            done = not line
            self._loop.call_soon_threadsafe(self._lines.put_nowait, None if done else line)
            if done:
                return

    async def next(self) -> str | None:
        """The next line, or None at end of input."""
        self._wanted.release()
        return await self._lines.get()


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
