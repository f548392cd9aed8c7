"""The terminal front end: the same conversation in a terminal, or line by line from a pipe."""

from bot.terminal.chat import TerminalChat, clean_text, is_tty, terminal_language
from bot.terminal.outbox import Screen, TerminalOutbox, WriterScreen
from bot.terminal.prompt import PromptScreen
from bot.terminal.upload import parse_upload

__all__ = [
    "PromptScreen",
    "Screen",
    "TerminalChat",
    "TerminalOutbox",
    "WriterScreen",
    "clean_text",
    "is_tty",
    "parse_upload",
    "terminal_language",
]
