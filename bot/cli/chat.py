"""`nemobot chat`: talk to the video agent from a terminal, or script it through a pipe."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import httpx

from backend.transport import backend_transport
from bot.app import build_app
from bot.ops.logs import configure
from bot.settings import Settings, load_settings
from bot.store.embedded import EmbeddedRedisError
from bot.terminal import (
    PromptScreen,
    Screen,
    TerminalChat,
    TerminalOutbox,
    WriterScreen,
    is_tty,
    terminal_language,
)
from bot.texts import normalize_lang, t

log = logging.getLogger(__name__)

# Offline exports should arrive within seconds, not at the production polling pace.
OFFLINE_POLL_S = 0.3
OFFLINE_RENDER_S = 2.0
LOG_FILE = "nemobot.log"


# The words /lang takes, and the locale-style codes (zh-CN, zh_TW, en-US…).
_LANG_WORDS = {
    "en": ("english", "英文", "英语"),
    "zh": ("cn", "chinese", "中文", "汉语", "简体"),
    "zh-hant": ("tw", "traditional", "繁體", "繁体", "繁體中文"),
}
_LANG_CODE = re.compile(r"(en|zh)([-_][a-z0-9]+)*")


class Fatal(Exception):
    """The chat cannot start; the message is one line for the user."""


def language(value: str) -> str:
    """`--lang`: a language the bot speaks, as a code the conversation reads (zh-TW stays
    zh-TW: Traditional); anything else is refused rather than silently English."""
    choice = value.strip().lower()
    for code, words in _LANG_WORDS.items():
        if choice in words:
            return code
    if _LANG_CODE.fullmatch(choice):
        return choice.replace("_", "-")
    raise argparse.ArgumentTypeError(f"unknown language {value!r}: use en, zh or zh-hant")


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
    p.add_argument(
        "--lang",
        type=language,
        help="your language: en, zh or zh-hant (also zh-tw, zh-cn…; default: from the locale)",
    )
    p.add_argument("--download-dir", type=Path, help="where exported videos are saved")
    p.add_argument(
        "--plain",
        action="store_true",
        help="line-by-line plain text even in a terminal (the default when input is a pipe)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log to standard error at LOG_LEVEL (default: warnings to DATA_DIR/nemobot.log)",
    )


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.download_dir is not None:
        settings = settings.model_copy(update={"download_dir": args.download_dir})
    secrets = settings.secret_values()
    if args.verbose:
        configure(level=settings.log_level, json_lines=settings.log_json, secrets=secrets)
    else:
        configure("WARNING", settings.log_json, secrets, stream=_log_file(settings.data_dir))
    try:
        check_download_dir(settings.download_dir)
        return asyncio.run(run_chat(args, settings))
    except Fatal as exc:
        print(f"nemobot chat: {exc}", file=sys.stderr)
        return 1


def _log_file(data_dir: Path) -> TextIO:
    """Where the chat's warnings go, out of the conversation's way."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return (data_dir / LOG_FILE).open("a", encoding="utf-8", buffering=1)
    except OSError:
        return sys.stderr


def check_download_dir(folder: Path) -> None:
    """Exported videos must be writable there: found now, not after a render."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise Fatal(
            f"cannot save videos in {folder} ({exc.strerror}); "
            "choose another folder with --download-dir or DOWNLOAD_DIR"
        ) from None


def utf8_lines(stream: TextIO) -> TextIO:
    """Standard input read as UTF-8, bytes that are not replaced by �, never a crash."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="replace")


async def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    interactive = is_tty(sys.stdin) and is_tty(sys.stdout) and not args.plain
    language = args.lang or terminal_language()
    lang = normalize_lang(language)
    sim: Any = None
    if args.offline:
        from backend.sim import SimConfig, Simulator

        # A reply cut short by Ctrl-C is not a simulator error worth a traceback.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        sim = Simulator(SimConfig(render_seconds=OFFLINE_RENDER_S))
        url = await sim.start()
        settings = settings.model_copy(
            update={
                "nemo_api_base": url,
                "nemo_token": None,
                "export_poll_interval_s": OFFLINE_POLL_S,
                "redis_namespace": f"{settings.redis_namespace}:offline",
            }
        )
        print(t("term_offline", lang, url=url), file=sys.stderr)
    try:
        app = build_app(settings, "terminal")
    except EmbeddedRedisError as exc:
        raise Fatal(str(exc)) from None
    try:
        if not await app.store.ping():
            raise Fatal(f"cannot reach Redis at {app.settings.redis_url}; is it running?")
        if sim is not None:  # the simulator starts empty each time: so does its chat
            await app.store.delete(args.chat_id)
        if sim is None:
            reason = await _unreachable(settings.nemo_api_base)
            if reason is not None:
                print(t("term_unreachable", lang, url=settings.nemo_api_base, reason=reason))
                return 1
        screen: Screen = PromptScreen() if interactive else WriterScreen(_writer(sys.stdout))
        outbox = TerminalOutbox(
            screen=screen,
            http=app.http,
            download_dir=settings.download_dir,
            lang=lang,
            offline=sim is not None,
        )
        chat = TerminalChat(
            app.conversation,
            outbox,
            stdin=utf8_lines(sys.stdin),
            interactive=interactive,
            chat_id=args.chat_id,
            language_code=language,
            history_file=settings.data_dir / "history",
        )
        return await chat.run()
    finally:
        await app.aclose()
        if sim is not None:
            await sim.stop()


def _writer(out: TextIO) -> Any:
    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


async def _unreachable(base_url: str) -> str | None:
    """Why the API cannot be reached, or None when it answers at all. Its own client, by
    the same way (proxy included) as the backend's: the probe is not a backend call, so it
    is neither logged nor counted as one (its answer is usually a 404)."""
    transport = backend_transport(1, base_url=base_url)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(8.0)) as http:
            await http.get(base_url)
    except httpx.TimeoutException:
        return "timed out"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None
