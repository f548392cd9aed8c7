"""The interactive screen: a prompt_toolkit line editor at the bottom, finished messages
printed above it, and what is still changing (progress, the answer being streamed) drawn
between the two and redrawn in place, so output never runs into what the user types.
Once a line is sent only the prompt and that line stay behind: what was live goes on
being drawn under it, never left as a stale copy in the scrollback."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import get_app_or_none
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from bot.terminal.outbox import TerminalOutbox

__all__ = ["PROMPT", "PromptScreen", "new_session"]

PROMPT = "› "
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_STYLE = Style.from_dict({"live": "ansicyan", "answer": "", "prompt": "bold"})


class PromptScreen:
    """Prints above the prompt (through `patch_stdout`) and asks the prompt to redraw."""

    @property
    def interactive(self) -> bool:
        return True

    @property
    def width(self) -> int:
        return shutil.get_terminal_size().columns

    def show(self, block: str) -> None:
        sys.stdout.write(block + "\n\n")
        sys.stdout.flush()

    def refresh(self) -> None:
        app = get_app_or_none()
        if app is not None:
            app.invalidate()


def live_message(outbox: TerminalOutbox) -> FormattedText:
    """The prompt with what is live above it: progress lines with a spinner, then the
    answer streamed so far (its last lines, so the prompt stays on the screen). The last
    drawing of a prompt, once its line is sent, is the prompt alone: it stays in the
    scrollback."""
    parts: list[tuple[str, str]] = []
    app = get_app_or_none()
    if app is not None and app.is_done:
        return FormattedText([("class:prompt", PROMPT)])
    frame = _SPINNER[int(time.monotonic() * 8) % len(_SPINNER)]
    for line in outbox.status_lines():
        parts.append(("class:live", f"{frame} {line}\n"))
    answer = outbox.answer_so_far()
    if answer:
        rows = shutil.get_terminal_size().lines
        tail = answer.splitlines()[-max(3, rows // 2) :]
        parts.append(("class:answer", "\n".join(tail) + "\n"))
    parts.append(("class:prompt", PROMPT))
    return FormattedText(parts)


def new_session(
    outbox: TerminalOutbox, history_file: Path | None, stop_answer: Callable[[], bool]
) -> PromptSession[str]:
    """A line editor with history (↑), redrawn often enough to animate the spinner.
    Ctrl-C calls `stop_answer` (True: it stopped one), else clears a half-typed line, else
    ends the prompt with KeyboardInterrupt."""
    history: History = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history_file.touch(exist_ok=True)
            history = FileHistory(str(history_file))
        except OSError:
            pass  # history stays in memory when the data directory is read-only
    keys = KeyBindings()

    @keys.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        if stop_answer():
            return  # what the user is typing meanwhile stays
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return PromptSession(
        message=lambda: live_message(outbox),
        history=history,
        style=_STYLE,
        refresh_interval=0.125,
        key_bindings=keys,
    )
