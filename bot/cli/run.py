"""`nemobot run`: the Telegram bot, by long polling (one process) or as a webhook server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from urllib.parse import urlsplit

import httpx
from aiohttp import web
from telegram.error import InvalidToken, NetworkError

from bot.app import App, build_app
from bot.ops.health import Check, serve_health
from bot.ops.logs import configure
from bot.ops.looplag import LoopLagMonitor, register_lag_metrics
from bot.ops.runtime import GcPauses, freeze_startup_objects
from bot.settings import Settings, load_settings
from bot.store.embedded import EmbeddedRedisError
from bot.telegram import ALLOWED_UPDATES, TelegramConfig, TelegramFront
from bot.telegram.webhook import run_webhook, webhook_secret


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--webhook",
        metavar="URL",
        default=None,
        help="run as a webhook server for this public URL (default: WEBHOOK_URL, else polling)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="port of the webhook server (default: WEBHOOK_PORT)",
    )


def webhook_path(url: str) -> str:
    """The local path the webhook server answers on: the public URL's path."""
    return urlsplit(url).path.strip("/")


def _namespaced(settings: Settings, token: str) -> Settings:
    """The store's keys under the bot's id, so several bots can share one Redis."""
    bot_id = token.split(":", 1)[0]
    return settings.model_copy(update={"redis_namespace": f"{settings.redis_namespace}:{bot_id}"})


def masked(token: str) -> str:
    """The bot's id and the secret's last characters: enough to tell which token it was."""
    bot_id, _, secret = token.partition(":")
    return f"{bot_id}:…{secret[-4:]}" if len(secret) > 8 else "…"


def _fail(message: str) -> int:
    print(f"nemobot run: {message}", file=sys.stderr)
    return 1


def _not_a_rejected_token(record: logging.LogRecord) -> bool:
    """PTB logs a rejected token with a traceback before raising it; `main` says it in one
    line instead."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, InvalidToken)


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    secret = settings.telegram_bot_token
    token = secret.get_secret_value() if secret is not None else ""
    if not token:
        print("nemobot run: TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
        return 2
    configured = settings.webhook_secret
    hook_secret = webhook_secret(token, configured.get_secret_value() if configured else None)
    hidden = [token, hook_secret, *settings.secret_values()]
    configure(settings.log_level, settings.log_json, secrets=hidden)
    logging.getLogger("telegram.ext").addFilter(_not_a_rejected_token)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app = build_app(_namespaced(settings, token), "telegram")
    except EmbeddedRedisError as exc:
        return _fail(str(exc))
    problem = loop.run_until_complete(_preflight(app, token))
    if problem is not None:
        loop.run_until_complete(app.aclose())
        return _fail(problem)
    try:
        serve(args, settings, app, hook_secret)
    except InvalidToken:
        # PTB's message quotes the token; say only which token it was.
        return _fail(f"Telegram rejected the bot token {masked(token)}; check TELEGRAM_BOT_TOKEN")
    except NetworkError as exc:
        reason = str(exc).replace(token, masked(token))
        return _fail(f"cannot reach Telegram at {settings.telegram_api_base} ({reason})")
    finally:
        if app.embedded is not None:  # stopped already, unless start-up failed
            app.embedded.stop()
    return 0


async def _preflight(app: App, token: str) -> str | None:
    """What keeps the bot from starting, in one line: the store, or Telegram."""
    if not await app.store.ping():
        return f"cannot reach Redis at {app.settings.redis_url}; is it running?"
    base = app.settings.telegram_api_base
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            answer = await http.get(f"{base}{token}/getMe")
    except httpx.HTTPError as exc:
        return f"cannot reach Telegram at {base} ({type(exc).__name__})"
    if answer.status_code in (401, 404):
        return f"Telegram rejected the bot token {masked(token)}; check TELEGRAM_BOT_TOKEN"
    return None


def serve(args: argparse.Namespace, settings: Settings, app: App, hook_secret: str) -> None:
    """Poll or serve the webhook until stopped."""
    health: list[web.AppRunner] = []
    lag = LoopLagMonitor(*register_lag_metrics(app.metrics.registry))
    GcPauses(app.metrics.registry).install()

    async def on_start() -> None:
        freeze_startup_objects()
        lag.start()
        if settings.metrics_port is not None:
            checks: dict[str, Check] = {"redis": app.store.ping, "backend": app.client.reachable}
            runner = await serve_health(
                app.metrics, checks, settings.metrics_listen, settings.metrics_port
            )
            health.append(runner)

    async def on_shutdown() -> None:
        await lag.stop()
        for runner in health:
            await runner.cleanup()
        await app.aclose()

    front = TelegramFront(
        app.conversation,
        TelegramConfig.from_settings(settings),
        store=app.store,
        metrics=app.metrics,
        on_start=on_start,
        on_stop=app.conversation.aclose,
        on_shutdown=on_shutdown,
    )
    application = front.build()
    url = args.webhook or settings.webhook_url
    if url:
        serving = run_webhook(
            application,
            front,
            listen=settings.webhook_listen,
            port=args.port or settings.webhook_port,
            url_path=webhook_path(url),
            webhook_url=url,
            secret=hook_secret,
            allowed_updates=list(ALLOWED_UPDATES),
        )
        asyncio.get_event_loop().run_until_complete(serving)
    else:
        application.run_polling(allowed_updates=list(ALLOWED_UPDATES))
