"""`nemobot <subcommand>`: one entry point, each subcommand in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from bot.settings import SettingsError, load_settings

SUBCOMMANDS = {
    "run": ("bot.cli.run", "run the Telegram bot (polling, or --webhook URL)"),
    "chat": ("bot.cli.chat", "chat with the video agent in this terminal"),
    "classify": ("bot.cli.classify", "show how the intent router reads texts"),
    "sim": ("bot.cli.sim", "serve the local NemoVideo API simulator"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemobot", description="Make videos by chatting with the NemoVideo agent."
    )
    parser.add_argument("--version", action="version", version=f"nemobot {_version()}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(_main=module.main)
    return parser


def _version() -> str:
    try:
        return version("nemobot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def default_command() -> str:
    """Telegram when a bot token is configured, the terminal chat otherwise."""
    if load_settings().telegram_bot_token is not None:
        return "run"
    print(
        "nemobot: no TELEGRAM_BOT_TOKEN set, starting the terminal chat "
        "(`nemobot --help` lists the commands).",
        file=sys.stderr,
    )
    return "chat"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            args = parser.parse_args([default_command()])
        code: int = args._main(args)
    except SettingsError as exc:
        print(f"nemobot: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
