"""`nemobot chat`: talk to the video agent from a terminal, or script it through a pipe."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import httpx

from bot.app import build_app
from bot.ops.logs import configure
from bot.settings import Settings, load_settings
from bot.store import MemoryChatStore
from bot.terminal import TerminalChat, TerminalOutbox, is_tty, terminal_language
from bot.texts import normalize_lang, t

log = logging.getLogger(__name__)

# Offline exports should arrive within seconds, not at the production polling pace.
OFFLINE_POLL_S = 0.3
OFFLINE_RENDER_S = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--offline",
        action="store_true",
        help="start the built-in API simulator and use it (no internet, no account)",
    )
    p.add_argument(
        "--chat-id",
        type=int,
        default=0,
        help="the chat this terminal is, in the store (default 0, which no Telegram chat uses)",
    )
    p.add_argument("--lang", help="your language, e.g. en or zh (default: from the locale)")
    p.add_argument("--download-dir", type=Path, help="where exported videos are saved")
    p.add_argument(
        "--plain",
        action="store_true",
        help="line-by-line plain text even in a terminal (the default when input is a pipe)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at the configured level")


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    secrets = settings.secret_values()
    level = settings.log_level if args.verbose else "WARNING"
    configure(level=level, json_lines=settings.log_json, secrets=secrets)
    return asyncio.run(run_chat(args, settings))


async def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    interactive = is_tty(sys.stdin) and is_tty(sys.stdout) and not args.plain
    language = args.lang or terminal_language()
    lang = normalize_lang(language)
    overrides: dict[str, Any] = {}
    if args.download_dir is not None:
        overrides["download_dir"] = args.download_dir
    sim: Any = None
    store = None
    if args.offline:
        from backend.sim import SimConfig, Simulator

        # A reply cut short by Ctrl-C is not a simulator error worth a traceback.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        sim = Simulator(SimConfig(render_seconds=OFFLINE_RENDER_S))
        url = await sim.start()
        overrides |= {
            "nemo_api_base": url,
            "nemo_token": None,
            "export_poll_interval_s": OFFLINE_POLL_S,
        }
        store = MemoryChatStore()
        print(t("term_offline", lang, url=url), file=sys.stderr)
    if overrides:
        settings = settings.model_copy(update=overrides)
    app = build_app(settings, "terminal", store=store)
    try:
        if sim is None:
            reason = await _unreachable(app.http, settings.nemo_api_base)
            if reason is not None:
                print(t("term_unreachable", lang, url=settings.nemo_api_base, reason=reason))
                return 1
        outbox = TerminalOutbox(
            out=sys.stdout,
            http=app.http,
            download_dir=settings.download_dir,
            interactive=interactive,
            lang=lang,
        )
        chat = TerminalChat(
            app.conversation,
            outbox,
            stdin=sys.stdin,
            interactive=interactive,
            chat_id=args.chat_id,
            language_code=language,
        )
        return await chat.run()
    finally:
        await app.aclose()
        if sim is not None:
            await sim.stop()


async def _unreachable(http: httpx.AsyncClient, base_url: str) -> str | None:
    """Why the API cannot be reached, or None when it answers at all."""
    try:
        await http.get(base_url, timeout=httpx.Timeout(8.0))
    except httpx.TimeoutException:
        return "timed out"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None
