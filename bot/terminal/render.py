"""How replies look in a terminal: the agent's Markdown rendered by rich, the bot's own
sentences as they are, and the terminal's words where the chat's would not fit."""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.markdown import Markdown
from rich.text import Text

from bot.io import Button, button_action
from bot.texts import LANGS, TEXTS, t

__all__ = ["buttons_line", "render_markdown", "render_text", "terminal_words", "unechoed"]

_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")

_COMMAND_OF_ACTION = {
    "export": "/export",
    "status": "/status",
    "credits": "/credits",
    "new": "/new",
}

# Telegram talk that means something else in a terminal, by language.
_TERMINAL_WORDS = {
    t(chat, lang): t(terminal, lang)
    for chat, terminal in (("gui_export", "term_gui_export"), ("help", "term_help"))
    for lang in LANGS
}

# Closing lines of a progress line that the message after it says again, in full.
_ECHOED = frozenset(
    text
    for key in ("progress_done", "export_failed_line", "export_stopped_line", "export_timeout_line")
    for text in TEXTS[key]
)


def unechoed(closing: str) -> bool:
    """Whether a progress line's closing words add something to the next message."""
    return closing not in _ECHOED


def terminal_words(text: str) -> str:
    """The chat's text with button talk ("tap Export below") put as terminal commands, and
    the chat's help as the terminal's."""
    for chat_words, terminal in _TERMINAL_WORDS.items():
        text = text.replace(chat_words, terminal)
    return text


def buttons_line(buttons: tuple[Button, ...], text: str) -> str:
    """Buttons as the commands that do the same, and links, unless the text says them."""
    parts: list[str] = []
    for button in buttons:
        if button.url:
            if button.url not in text:
                parts.append(f"{button.label}: {button.url}")
            continue
        action = button_action(button.data)
        command = _COMMAND_OF_ACTION.get(action or "")
        if command and not re.search(rf"{re.escape(command)}\b", text):
            parts.append(f"{button.label} → {command}")
    return "   ".join(parts)


def render_markdown(text: str, width: int) -> str:
    """The agent's Markdown as terminal text with styles (headings, bold, lists, code)."""
    return _render(Markdown(_hard_breaks(text), hyperlinks=False), width)


def render_text(text: str, width: int) -> str:
    """The bot's own text, wrapped between words to the width. Chinese is left to the
    terminal, which wraps it between any two characters, as it should be."""
    if _CJK.search(text):
        return text
    return _render(Text(text), width)


def _render(renderable: Markdown | Text, width: int) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer, force_terminal=True, width=max(20, width), highlight=False, emoji=False
    )
    console.print(renderable)
    return buffer.getvalue().rstrip("\n")


def _hard_breaks(text: str) -> str:
    """A line break in a chat message is one: Markdown would join the lines (code kept)."""
    lines: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        lines.append(line if fenced or not line.strip() else line.rstrip() + "  ")
    return "\n".join(lines)
