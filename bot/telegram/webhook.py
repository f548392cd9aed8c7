"""The webhook server: Telegram's calls are answered only once their update is safe.

PTB's own webhook server answers 200 as soon as an update is parsed, before any handler
ran; a replica killed in that moment loses the update, since Telegram never sends an
acknowledged update again. Here a call is answered once the front end reports the
message stored in the chat's inbox in Redis, or answered (the quick ones), or not meant
to run at all. A replica that dies first leaves the call unanswered, and Telegram or the
balancer delivers the update again, to a living replica; the store's duplicate check
makes a second delivery harmless. Album parts are the exception: they are collected in
memory for `MEDIA_GROUP_WAIT_S` before anything is stored, and holding the call that
long would keep the album's other parts from arriving.

The application is PTB's own, driven through its public lifecycle (initialize, start,
stop, shutdown, and the post_* hooks) as `Application.run_webhook` drives it.

Every call must carry the secret registered with `setWebhook`: the configured one, or
else one derived from the bot token, so replicas agree on it without configuration and
nobody who can merely reach the port can post updates in another chat's name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
from typing import Any, Protocol

from aiohttp import web
from telegram import Update
from telegram.error import NetworkError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from bot.telegram.shape import well_typed

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# Telegram gives up on a call after about a minute; answering 503 well before that has
# it deliver the update again soon, to whichever replica the balancer picks.
ACCEPT_TIMEOUT_S = 25.0
_DERIVATION_LABEL = b"nemobot webhook secret v1"


def webhook_secret(token: str, configured: str | None = None) -> str:
    """The secret Telegram must send with every call: `configured` when given, else an
    HMAC of a fixed label keyed by the bot token (hex: the characters Telegram allows)."""
    if configured:
        return configured
    return hmac.new(token.encode(), _DERIVATION_LABEL, hashlib.sha256).hexdigest()


class Accepting(Protocol):
    async def accept(self, application: Any, update: Update, wait_s: float) -> bool: ...


class WebhookServer:
    def __init__(
        self,
        front: Accepting,
        application: Any,
        *,
        path: str,
        secret: str,
        accept_timeout_s: float = ACCEPT_TIMEOUT_S,
    ) -> None:
        self._front = front
        self._application = application
        self._path = "/" + path.strip("/")
        self._secret = secret
        self._timeout = accept_timeout_s
        self._runner: web.AppRunner | None = None

    async def start(self, listen: str, port: int) -> None:
        app = web.Application()
        app.router.add_post(self._path, self._handle)
        # On stop, calls still waiting are cut short: unanswered, they are delivered again.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, listen, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(
            request.headers.get(SECRET_HEADER, "").encode(), self._secret.encode()
        ):
            return web.Response(status=403)
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:  # not JSON, or nested past any update
            log.warning("unreadable webhook body refused", extra={"error": type(exc).__name__})
            return web.Response(status=400)
        if not isinstance(body, dict):
            log.warning("webhook body is not an update", extra={"error": type(body).__name__})
            return web.Response(status=400)
        if not well_typed(body):
            update_id = body.get("update_id")
            log.warning(
                "ill-typed update skipped",
                extra={"update_id": update_id if isinstance(update_id, int) else None},
            )
            return web.Response()
        try:
            update = Update.de_json(body, self._application.bot)
        except Exception:  # any parse failure inside PTB: sending it again would not help
            log.warning("unparsable update skipped", extra={"update_id": body.get("update_id")})
            return web.Response()
        if await self._front.accept(self._application, update, self._timeout):
            return web.Response()
        log.warning("update not stored in time; asking for it again")
        return web.Response(status=503)


@retry(
    retry=retry_if_exception_type(NetworkError),
    stop=stop_after_attempt(5),
    wait=wait_exponential(multiplier=0.5, max=8),
    reraise=True,
)
async def _set_webhook(application: Any, url: str, secret: str, allowed: list[str]) -> None:
    await application.bot.set_webhook(url, allowed_updates=allowed, secret_token=secret)


async def run_webhook(
    application: Any,
    front: Accepting,
    *,
    listen: str,
    port: int,
    url_path: str,
    webhook_url: str,
    secret: str,
    allowed_updates: list[str],
) -> None:
    """Serve until SIGINT or SIGTERM, then stop the way `run_webhook` does."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = WebhookServer(front, application, path=url_path, secret=secret)
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await server.start(listen, port)
        try:
            await _set_webhook(application, webhook_url, secret, allowed_updates)
            await application.start()
            await stop.wait()
        finally:
            await server.stop()
            if application.running:
                await application.stop()
            if application.post_stop is not None:
                await application.post_stop(application)
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
