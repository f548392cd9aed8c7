"""The terminal chat: the same conversation as Telegram, in a terminal or a pipe.

Interactive when standard input and output are a terminal: a line editor with history,
replies printed above it as they finish, Ctrl-C stopping the answer being streamed, else
clearing a half-typed line, else (on an empty line) leaving, as Ctrl-D and /quit do.
Otherwise line by line: each input line is one message, each finished reply is printed as
plain text, and it exits at end of input once all work has finished, so operators can
script it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TextIO

from prompt_toolkit.patch_stdout import patch_stdout

from bot.conversation import Conversation
from bot.conversation.text import command_of
from bot.io import Attachment, Inbound
from bot.terminal.outbox import TerminalOutbox
from bot.terminal.prompt import new_session
from bot.terminal.upload import attachment, parse_upload
from bot.texts import normalize_lang, t

__all__ = ["TerminalChat", "clean_text", "is_tty", "terminal_language"]

_QUIT = frozenset({"/quit", "/exit", "/q"})
# The commands the conversation answers in a terminal; any other is a typo, said as such
# rather than answered with the whole help.
_COMMANDS = frozenset(
    {"start", "help", "new", "export", "status", "credits", "cancel", "lang", "upload"}
)


def terminal_language(environ: dict[str, str] | None = None) -> str | None:
    """The user's language from the locale variables, as Telegram would report it."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return value.split(".", 1)[0].replace("_", "-").lower()
    return None


def clean_text(line: str) -> str:
    """Bytes that were not UTF-8 (kept by the line editor as lone surrogates) become �."""
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(eq=False)
class TerminalChat:
    """Reads lines, hands them to the conversation as one chat, renders the answers."""

    conversation: Conversation
    outbox: TerminalOutbox
    _: KW_ONLY
    stdin: TextIO
    interactive: bool
    chat_id: int = 0
    language_code: str | None = None
    history_file: Path | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _lang: str = field(default="en", init=False)
    _stopping: bool = field(default=False, init=False)  # Ctrl-C stopped an answer; next leaves

    def __post_init__(self) -> None:
        self._lang = normalize_lang(self.language_code)

    def message(self, line: str) -> Inbound | None:
        """The inbound message for one input line (None for blank lines)."""
        text = clean_text(line).strip()
        if not text:
            return None
        attachments: tuple[Attachment, ...] = ()
        if text.split(maxsplit=1)[0].lower() == "/upload":
            arg = text[len("/upload") :].strip()
            files, rest, missing = parse_upload(arg)
            for path in missing:
                self.outbox.say(t("term_no_file", self._lang, path=path))
            if not files:
                if not missing and not rest.startswith(("http://", "https://")):
                    self.outbox.say(t("term_upload_usage", self._lang))
                    return None
                if not rest:
                    return None
                return self._inbound(f"/upload {rest}")
            attachments = tuple(attachment(p) for p in files)
            text = rest
        command = command_of(text)
        if command is not None and command[0] not in _COMMANDS:
            word = text.split(maxsplit=1)[0]
            self.outbox.say(t("term_unknown_command", self.outbox.lang, command=word))
            return None
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
        """Until /quit or end of input. A pipe waits for every job (exports included) to
        finish; a person leaving does not: an export in flight is delivered next time."""
        await self.conversation.resume_pending(lambda _chat: self.outbox, only={self.chat_id})
        if self.interactive:
            await self._interactive()
        elif await self._plain():
            await self.conversation.wait_idle()
        return 0

    async def _plain(self) -> bool:
        """Each line in turn; False when /quit ended the input."""
        lines = _LineReader(self.stdin.readline)
        while (line := await lines.next()) is not None:
            if line.strip().lower() in _QUIT:
                return False
            msg = self.message(line)
            if msg is not None:
                await self.conversation.handle(msg, self.outbox)
        return True

    async def _interactive(self) -> None:
        session = new_session(self.outbox, self.history_file, self._stop_answer)
        with patch_stdout(raw=True):
            self.outbox.say(t("term_banner", self._lang))
            while True:
                try:
                    line = await session.prompt_async()
                except KeyboardInterrupt:  # Ctrl-C on an empty line with no answer to stop
                    break
                except EOFError:
                    break
                if line.strip().lower() in _QUIT:
                    break
                self._stopping = False
                msg = self.message(line)
                if msg is not None:
                    self._submit(msg)
            if self.outbox.offline:
                goodbye = "term_goodbye_offline"
            elif self.outbox.exporting:
                goodbye = "term_goodbye_export"
            else:
                goodbye = "term_goodbye"
            self.outbox.screen.show(t(goodbye, self.outbox.lang))

    def _stop_answer(self) -> bool:
        """First Ctrl-C while the agent answers: /cancel it. False: nothing to stop."""
        if self._stopping or not self.outbox.answering:
            return False
        self._stopping = True
        self._submit(self._inbound("/cancel"))
        self.outbox.say(t("term_again_to_quit", self.outbox.lang))
        return True

    def _submit(self, msg: Inbound) -> None:
        task = asyncio.create_task(self.conversation.handle(msg, self.outbox))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _LineReader:
    """Reads lines on a daemon thread, so a blocked read never keeps the process alive
    and the event loop keeps streaming replies meanwhile."""

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
