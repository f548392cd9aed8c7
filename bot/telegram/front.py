"""The Telegram front end: PTB updates in, the conversation's operations out.

One handler sees every update and decides only Telegram matters (who may talk, whether a
group message is for the bot, which files Telegram lets us fetch, albums); everything
else is the conversation's. Each message is handed to the conversation in its own task,
in arrival order, so a running job never holds up other chats, button presses or
control commands, and stopping the bot never waits for a render to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from telegram import Bot, BotCommand, CallbackQuery, Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler
from telegram.ext import ApplicationBuilder as _Builder

from backend import MIB
from bot.conversation import Conversation
from bot.io import Attachment, Inbound, Outbox, SendText
from bot.ops.metrics import Metrics
from bot.settings import Settings
from bot.store import ChatStore
from bot.telegram.aiohttp_request import AiohttpRequest
from bot.telegram.bounded import Recent
from bot.telegram.commands import COMMANDS
from bot.telegram.delivery import RetryPolicy
from bot.telegram.inbound import (
    AlbumCollector,
    TooLarge,
    addressed_text,
    bound_callback,
    message_files,
    reader_for,
    to_inbound,
)
from bot.telegram.outbox import (
    RECORDS_LIMIT,
    FrontStats,
    RenderConfig,
    Renderer,
    TelegramOutbox,
)
from bot.telegram.sending import SendScheduler
from bot.telegram.updates_request import TolerantUpdatesRequest
from bot.texts import fmt_size, normalize_lang, t

__all__ = [
    "ALLOWED_UPDATES",
    "TelegramConfig",
    "TelegramFront",
]

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "callback_query")
PTBApp = Application[Any, Any, Any, Any, Any, Any]


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram side of the settings, with Telegram's limits in bytes."""

    token: str = field(repr=False)
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    allowed_user_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()
    admin_user_ids: frozenset[int] = frozenset()
    download_limit_bytes: int = 20 * MIB
    media_group_wait_s: float = 1.2
    render: RenderConfig = field(default_factory=RenderConfig)

    @classmethod
    def from_settings(cls, settings: Settings, token: str | None = None) -> TelegramConfig:
        secret = settings.telegram_bot_token
        value = token or (secret.get_secret_value() if secret is not None else "")
        if not value:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        return cls(
            token=value,
            base_url=settings.telegram_api_base,
            base_file_url=settings.telegram_file_base,
            allowed_user_ids=frozenset(settings.allowed_user_ids),
            allowed_chat_ids=frozenset(settings.allowed_chat_ids),
            admin_user_ids=frozenset(settings.admin_user_ids),
            download_limit_bytes=int(settings.telegram_max_download_mb * MIB),
            media_group_wait_s=settings.media_group_wait_s,
            render=RenderConfig(
                upload_video_bytes=int(settings.telegram_max_upload_mb * MIB),
                allow_private_downloads=settings.allow_private_downloads,
                video_retry=RetryPolicy(give_up_s=settings.telegram_video_retry_s),
            ),
        )


def _ref() -> str:
    return secrets.token_hex(3)


class TelegramFront:
    """Builds the PTB `Application` and connects it to the conversation."""

    def __init__(
        self,
        conversation: Conversation,
        config: TelegramConfig,
        *,
        store: ChatStore | None = None,
        metrics: Metrics | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.conversation = conversation
        self.config = config
        self.store = store
        self.metrics = metrics
        self.stats = FrontStats()
        self._on_start = on_start
        self._on_stop = on_stop
        self._on_shutdown = on_shutdown
        self._albums = AlbumCollector(config.media_group_wait_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self._renderer: Renderer | None = None
        self._http: httpx.AsyncClient | None = None
        # Chats told they are not allowed, told once (once more if long forgotten).
        self._refused_chats: Recent[int, bool] = Recent(RECORDS_LIMIT)
        self._bot: Bot | None = None
        self._bot_id = 0
        self._quick_gate = asyncio.Semaphore(64)
        # Webhook calls waiting for their update's message to be stored, by update id.
        self._acks: dict[int, asyncio.Future[bool]] = {}
        self._username = ""

    # ------------------------------------------------------------------ building
    def build(self) -> PTBApp:
        """The unmodified PTB application, pointed at `base_url`/`base_file_url`. It has no
        rate limiter: what the bot shows is paced by the renderer's `SendScheduler`."""
        cfg = self.config
        builder: _Builder[Any, Any, Any, Any, Any, Any] = Application.builder()
        application = (
            builder.token(cfg.token)
            .base_url(cfg.base_url)
            .base_file_url(cfg.base_file_url)
            .concurrent_updates(256)
            .request(
                AiohttpRequest(
                    connection_pool_size=32,
                    connect_timeout=10,
                    read_timeout=30,
                    write_timeout=60,
                    pool_timeout=30,
                )
            )
            .get_updates_request(
                TolerantUpdatesRequest(connection_pool_size=1, read_timeout=40, connect_timeout=10)
            )
            .post_init(self._post_init)
            .post_stop(self._post_stop)
            .post_shutdown(self._post_shutdown)
            .build()
        )
        application.add_handler(TypeHandler(Update, self._on_update))
        application.add_error_handler(self._on_error)
        return application

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            raise RuntimeError("the application has not been initialised")
        return self._renderer

    def outbox_for(
        self, chat_id: int, lang: str | None = None, *, handoff: bool = False
    ) -> TelegramOutbox:
        return self.renderer.outbox(chat_id, lang, handoff=handoff)

    async def _post_init(self, application: PTBApp) -> None:
        bot = application.bot
        self._bot = bot
        self._bot_id = bot.id
        self._username = bot.username
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=120.0))
        on_429 = self.metrics.telegram_429.inc if self.metrics is not None else None
        # Replicas on one bot token share its send budget through the store.
        shared = self.store.take_sends if self.store is not None else None
        sending = SendScheduler(self.config.render.limits, on_429=on_429, shared=shared)
        self._renderer = Renderer(bot, self._http, self.config.render, self.stats, sending)
        await self._set_commands(application)
        if self._on_start is not None:
            await self._on_start()
        await self.conversation.resume_pending(self._resume_outbox, reader_for=self._reader_for)

    def _resume_outbox(self, chat_id: int) -> Outbox:
        return self.outbox_for(chat_id)

    def _reader_for(self, ref: Mapping[str, Any]) -> Callable[[], Awaitable[bytes]]:
        """Files of messages queued by any replica are fetched through this bot."""
        if self._bot is None:
            raise RuntimeError("the application has not been initialised")
        return reader_for(self._bot, ref, self.config.download_limit_bytes)

    async def _set_commands(self, application: PTBApp) -> None:
        """The command menu in English (the default) and Chinese."""
        english = [BotCommand(name, en) for name, en, _ in COMMANDS]
        chinese = [BotCommand(name, zh) for name, _, zh in COMMANDS]
        try:
            await application.bot.set_my_commands(english)
            await application.bot.set_my_commands(chinese, language_code="zh")
        except Exception as exc:  # a menu is a nicety: never stop start-up for it
            log.warning("could not set the command menus: %s", type(exc).__name__)

    async def _post_stop(self, application: PTBApp) -> None:
        """Updates stopped: the jobs stop first (their work stays stored), then the calls
        still waiting on them."""
        if self._on_stop is not None:
            await self._on_stop()
        await self.drain()

    async def _post_shutdown(self, application: PTBApp) -> None:
        if self._renderer is not None:
            self._renderer.closed = True
        if self._on_shutdown is not None:
            await self._on_shutdown()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> None:
        """Stop handing messages on; cancel what still runs (pending exports stay stored)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    # ------------------------------------------------------------------ updates
    def _spawn(self, coro: Coroutine[Any, Any, None], update: Update | None) -> None:
        task = asyncio.create_task(self._guard(coro, update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, None], update: Update | None) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._report_error(update, exc)

    def _allowed(self, user_id: int | None, chat_id: int) -> bool:
        cfg = self.config
        if not cfg.allowed_user_ids and not cfg.allowed_chat_ids:
            return True
        if user_id is not None and (
            user_id in cfg.allowed_user_ids or user_id in cfg.admin_user_ids
        ):
            return True
        return chat_id in cfg.allowed_chat_ids

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update passes here; nothing before the hand-over awaits, to keep the order."""
        chat = update.effective_chat
        if chat is None:
            return
        user = update.effective_user
        user_id = user.id if user is not None else None
        lang = user.language_code if user is not None else None
        if not self._allowed(user_id, chat.id):
            self._spawn(self._refuse_user(update, chat.id, user_id, lang), update)
            return
        self.stats.chats.add(chat.id)
        query = update.callback_query
        if query is not None:
            self._spawn(self._answer(query), update)
            if bound_callback(query, chat.id, self._bot_id):
                msg = to_inbound(update, text="")
                self._spawn(self._run(msg, lang, self._acks.pop(update.update_id, None)), update)
            elif query.data:
                log.info("press with data not on its message ignored", extra={"chat_id": chat.id})
            return
        message = update.message
        if message is None:
            return
        text = addressed_text(message, self._bot_id, self._username)
        group_id = message.media_group_id
        if group_id is not None:
            if self._albums.join(chat.id, group_id, update, message):
                self._spawn(self._album(chat.id, group_id, lang), update)
            return
        if text is None:
            return
        if text.split(maxsplit=1)[:1] == ["/stats"] and user_id in self.config.admin_user_ids:
            self._spawn(self._send_stats(chat.id, lang), update)
            return
        files, refused = message_files(message, context.bot, self.config.download_limit_bytes)
        if refused:
            self._spawn(self._refuse_files(update, chat.id, refused, lang), update)
            if not files:
                return
        if not text.strip() and not files:
            return
        msg = to_inbound(update, text=text, attachments=tuple(files))
        self._spawn(self._run(msg, lang, self._acks.pop(update.update_id, None)), update)

    async def accept(self, application: PTBApp, update: Update, wait_s: float) -> bool:
        """Hand a webhook update to the application; return once its message is stored in
        the chat's inbox or answered, or at once when it starts nothing that must last.
        False when the store could not take it, or not within `wait_s` (the caller asks
        for it again)."""
        acked: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._acks[update.update_id] = acked
        try:
            await application.process_update(update)
        finally:
            unclaimed = self._acks.pop(update.update_id, None) is not None
        if unclaimed:
            return True
        try:
            return await asyncio.wait_for(asyncio.shield(acked), wait_s)
        except TimeoutError:
            return False

    async def _answer(self, query: CallbackQuery) -> None:
        """Stop the button's spinner at once, whatever the press starts.

        A press Telegram delivers twice (or too late, or forged) cannot be answered; that
        is cosmetic, so it is only logged.
        """
        try:
            await query.answer()
        except TelegramError as exc:
            log.info("callback query not answered: %s", exc.message)

    async def _run(
        self, msg: Inbound, lang: str | None, acked: asyncio.Future[bool] | None = None
    ) -> None:
        """`acked` is resolved once the message is stored or answered (True), or could not
        be stored (False; see `accept`)."""

        def stored(result: bool = True) -> None:
            if acked is not None and not acked.done():
                acked.set_result(result)

        def unstored() -> None:
            stored(False)

        quick = self.conversation.is_control(msg)
        # A quick answer is handed to the sender once computed: its webhook call is then
        # answered, however long the chat's earlier messages keep the reply waiting
        # (Telegram would give up on the call and deliver the update again).
        outbox = self.outbox_for(msg.chat_id, normalize_lang(lang), handoff=quick)
        # Quick answers of a burst take turns: thousands of requests in flight at once
        # would cost more in connection-pool bookkeeping than in answering.
        gate = self._quick_gate if quick else contextlib.nullcontext()
        self.stats.jobs_running += 1
        try:
            async with gate:
                unstored_cb = unstored if acked is not None else None
                await self.conversation.handle(msg, outbox, accepted=stored, unstored=unstored_cb)
        finally:
            stored()
            self.stats.jobs_running -= 1
            await outbox.close()

    async def _album(self, chat_id: int, group_id: str, lang: str | None) -> None:
        """Photos sent together become one message with every file, handled once."""
        parts = await self._albums.gather(chat_id, group_id)
        first_update = parts[0][0]
        texts = [addressed_text(m, self._bot_id, self._username) for _, m in parts]
        if all(text is None for text in texts):
            return
        text = next((x for x in texts if x), "")
        files: list[Attachment] = []
        refused: list[TooLarge] = []
        for _, message in parts:
            ok, too_big = message_files(
                message, first_update.get_bot(), self.config.download_limit_bytes
            )
            files.extend(ok)
            refused.extend(too_big)
        if refused:
            await self._refuse_files(first_update, chat_id, refused, lang)
        if files or text.strip():
            msg = to_inbound(first_update, text=text, attachments=tuple(files))
            await self._run(msg, lang)

    # ------------------------------------------------------------------ replies of our own
    async def _first_time(self, update: Update) -> bool:
        """Dedupe the refusals sent here. They have a scope of their own: the same update
        goes on to the conversation (with its acceptable files), which dedupes it again."""
        if self.store is None:
            return True
        try:
            return await self.store.first_seen(update.update_id, scope="refusal")
        except Exception:  # a store hiccup must not silence the bot
            log.warning("update dedupe failed", extra={"update_id": update.update_id})
            return True

    async def _refuse_files(
        self, update: Update, chat_id: int, refused: list[TooLarge], lang: str | None
    ) -> None:
        if not await self._first_time(update):
            return
        outbox = self.outbox_for(chat_id, normalize_lang(lang))
        for item in refused:
            kind_key = {"image": "kind_image", "video": "kind_video", "audio": "kind_audio"}.get(
                (item.mime or "").split("/", 1)[0], "kind_other"
            )
            text = t(
                "file_rejected_size",
                lang,
                name=item.name,
                size=fmt_size(item.size),
                kind=t(kind_key, lang),
                limit=f"{fmt_size(item.limit)} ({t('telegram_file_limit', lang)})",
            )
            await outbox.send(SendText(text))
        await outbox.close()

    async def _refuse_user(
        self, update: Update, chat_id: int, user_id: int | None, lang: str | None
    ) -> None:
        query = update.callback_query
        if query is not None:
            await self._answer(query)
        if chat_id < 0 or chat_id in self._refused_chats or update.message is None:
            return
        self._refused_chats[chat_id] = True
        log.info("refused a user not on the allowlist", extra={"chat_id": chat_id})
        await self.outbox_for(chat_id, lang).send(SendText(t("not_allowed", lang, user_id=user_id)))

    async def _send_stats(self, chat_id: int, lang: str | None) -> None:
        errors = dict(self.stats.errors)
        if self.metrics is not None:
            for metric in self.metrics.errors.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total") and sample.value:
                        kind = sample.labels.get("kind", "?")
                        errors[kind] = errors.get(kind, 0) + int(sample.value)
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        text = t(
            "stats",
            lang,
            since=time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.stats.started_at)),
            chats=len(self.stats.chats),
            jobs=self.stats.jobs_running,
            exports=self.stats.exports_today(),
            errors=listed or t("no_errors", lang),
        )
        await self.outbox_for(chat_id, lang).send(SendText(text))

    # ------------------------------------------------------------------ errors
    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        if error is None:
            return
        await self._report_error(update if isinstance(update, Update) else None, error)

    async def _report_error(self, update: Update | None, exc: BaseException) -> None:
        """Log with the update and chat ids; the user gets the friendly reply, no traceback."""
        ref = _ref()
        chat = update.effective_chat if update is not None else None
        user = update.effective_user if update is not None else None
        self.stats.error(type(exc).__name__)
        log.error(
            "front end error ref=%s: %s",
            ref,
            type(exc).__name__,
            exc_info=exc,
            extra={
                "update_id": update.update_id if update is not None else None,
                "chat_id": chat.id if chat is not None else None,
            },
        )
        if chat is None or self._renderer is None:
            return
        lang = user.language_code if user is not None else None
        with contextlib.suppress(Exception):
            await self.renderer.outbox(chat.id, lang).send(
                SendText(t("err_unknown", lang, ref=ref))
            )
