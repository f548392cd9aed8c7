"""`nemobot run`: the Telegram bot, by long polling (one process) or as a webhook server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from urllib.parse import urlsplit

from aiohttp import web
from telegram.error import InvalidToken

from bot.app import build_app, build_store
from bot.ops.health import Check, serve_health
from bot.ops.logs import configure
from bot.ops.looplag import LoopLagMonitor, register_lag_metrics
from bot.ops.runtime import GcPauses, freeze_startup_objects
from bot.settings import Settings, load_settings
from bot.store import ChatStore
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


def _store(settings: Settings, token: str) -> ChatStore:
    """The chat store, namespaced by the bot's id so several bots can share one Redis."""
    bot_id = token.split(":", 1)[0]
    namespace = f"{settings.redis_namespace}:{bot_id}"
    return build_store(settings.model_copy(update={"redis_namespace": namespace}))


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

    asyncio.set_event_loop(asyncio.new_event_loop())
    app = build_app(settings, "telegram", store=_store(settings, token))
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
    try:
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
    except InvalidToken:
        # PTB's message quotes the token; say only which setting is wrong.
        print("nemobot run: Telegram rejected TELEGRAM_BOT_TOKEN", file=sys.stderr)
        return 2
    return 0
