"""The terminal front end: the same conversation in a terminal, or line by line from a pipe."""

from bot.terminal.chat import TerminalChat, TerminalOutbox, is_tty, parse_upload, terminal_language

__all__ = ["TerminalChat", "TerminalOutbox", "is_tty", "parse_upload", "terminal_language"]
