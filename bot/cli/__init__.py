"""`nemobot` and its subcommands (run, chat, classify, sim), one module each."""

from bot.cli.main import main

__all__ = ["main"]
