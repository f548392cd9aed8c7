"""Rendering the conversation's outbound operations as Telegram messages.

Every call waits for a slot from the bot's `SendScheduler` (bot/telegram/sending.py), in
the class of what it shows. A streamed answer is one message: its first text goes out when
the chat's turn comes (whatever text it has by then), later texts replace the one waiting
(only the latest is sent), an edit that meets a flood error is dropped, and the final text
takes the place of an edit still waiting, waits out any flood and is always delivered,
formatted, split at 4096 characters, with a plain-text fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import socket
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message
from telegram.constants import ChatAction as TgChatAction
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from backend import MIB
from bot.io import (
    Button,
    ChatAction,
    DeliveryFailed,
    Outbound,
    Progress,
    SendText,
    SendVideo,
    Stream,
)
from bot.telegram.bounded import DistinctCount, Recent
from bot.telegram.delivery import RetryPolicy, deliver_with_retry
from bot.telegram.format import html_is_balanced, markdown_to_html, split_text
from bot.telegram.mp4 import Mp4Info, probe_mp4
from bot.telegram.pictures import thumbnail_jpeg, timeline_png
from bot.telegram.sending import Priority, SendLimits, SendScheduler
from bot.texts import fmt_elapsed, t
from bot.timeline import timeline_of

__all__ = ["FrontStats", "RenderConfig", "Renderer", "TelegramOutbox", "is_public_address"]

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
RECORDS_LIMIT = 10_000  # entries per kind of per-chat record kept in memory
T = TypeVar("T")


@dataclass(frozen=True)
class RenderConfig:
    """Telegram's limits and our pacing; the defaults are Telegram's documented numbers."""

    limits: SendLimits = field(default_factory=SendLimits)
    typing_every_s: float = 4.0
    fleeting_after_s: float = 1.0  # a fleeting status line shows once it lasted this long
    answer_first_after_s: float = 0.3  # an answer's first text waits this long for the rest
    url_video_bytes: int = 20 * MIB
    upload_video_bytes: int = 50 * MIB
    allow_private_downloads: bool = False
    max_flood_wait_s: float = 120.0
    final_attempts: int = 6
    head_timeout_s: float = 15.0
    download_timeout_s: float = 120.0  # the whole download, however slowly bytes trickle
    video_retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class FrontStats:
    """What `/stats` shows operators: counted by this process since it started."""

    started_at: float = field(default_factory=time.time)
    chats: DistinctCount = field(default_factory=DistinctCount)
    jobs_running: int = 0
    exports_by_day: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def export_delivered(self) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.exports_by_day[day] = self.exports_by_day.get(day, 0) + 1

    def exports_today(self) -> int:
        return self.exports_by_day.get(time.strftime("%Y-%m-%d", time.gmtime()), 0)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Renderer:
    """Everything outboxes of one bot share: the send scheduler, sent videos, an HTTP client."""

    def __init__(
        self,
        bot: Bot,
        http: httpx.AsyncClient,
        config: RenderConfig | None = None,
        stats: FrontStats | None = None,
        sending: SendScheduler | None = None,
    ) -> None:
        self.bot = bot
        self.http = http
        self.config = config or RenderConfig()
        self.stats = stats or FrontStats()
        self.sending = sending or SendScheduler(self.config.limits)
        # Video URL -> Telegram file_id, to send it again without uploading it again.
        self.video_ids: Recent[str, str] = Recent(RECORDS_LIMIT)
        self.closed = False  # set when the bot shuts down: nothing can be sent any more
        # The last chat action per chat; it matters for seconds, so only recent ones stay.
        self._last_action: Recent[int, tuple[str, float]] = Recent(RECORDS_LIMIT)

    def records(self) -> dict[str, int]:
        """How many per-chat entries are held in memory, by kind."""
        return {
            "video_ids": len(self.video_ids),
            "chat_actions": len(self._last_action),
            "pacers": self.sending.chats(),
        }

    def action_due(self, chat_id: int, action: str) -> bool:
        """Whether to send `action` now: not when the chat shows it already (sent well
        within the renewal period)."""
        now = time.monotonic()
        last = self._last_action.get(chat_id)
        gap = 0.75 * self.config.typing_every_s
        if last is not None and last[0] == action and now - last[1] < gap:
            return False
        self._last_action[chat_id] = (action, now)
        return True

    def outbox(
        self, chat_id: int, lang: str | None = None, *, handoff: bool = False
    ) -> TelegramOutbox:
        return TelegramOutbox(self, chat_id, lang, handoff=handoff)


@dataclass
class _Live:
    """A message that grows (a Stream) or a status line (a Progress), maybe several messages."""

    formatted: bool
    message_ids: list[int] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    pending: str | None = None
    buttons: tuple[Button, ...] = ()
    flusher: asyncio.Task[None] | None = None
    sending: bool = False  # the flusher holds a slot and is calling Telegram
    showing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one change at a time
    done: bool = False
    text: str = ""
    literal: tuple[str, ...] = ()
    fleeting: bool = False


class _Skipped(TelegramError):
    """A call dropped because the chat is under flood control; a later one carries its text."""

    def __init__(self) -> None:
        super().__init__("skipped under flood control")


# Set in a flusher's task once it holds a slot: its next call does not wait for another.
_SLOT_HELD: ContextVar[bool] = ContextVar("slot_held", default=False)


def _priority(*, final: bool, create: bool) -> Priority:
    if final:
        # The complete answer, or a status line's last word: the job waits for it, so it
        # must never wait behind other chats' first signs of life.
        return Priority.ANSWER
    return Priority.FIRST if create else Priority.PROGRESS


def retry_after_s(exc: RetryAfter) -> float:
    """Seconds from a flood error (PTB 22 is moving this value from int to timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: object = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, int | float) else 1.0


def _read_local(path: str, cap: int) -> bytes | None:
    """A rendered file on disk, if it exists and Telegram would take it."""
    try:
        if os.path.getsize(path) > cap:
            return None
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _markup(buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    keys = []
    for button in buttons:
        if button.url:
            keys.append(InlineKeyboardButton(button.label, url=button.url))
        elif button.data:
            keys.append(InlineKeyboardButton(button.label, callback_data=button.data[:64]))
    if not keys:
        return None
    return InlineKeyboardMarkup([keys[i : i + 2] for i in range(0, len(keys), 2)])


def _is_not_modified(exc: TelegramError) -> bool:
    return "message is not modified" in exc.message.lower()


def _is_parse_error(exc: TelegramError) -> bool:
    return "can't parse entities" in exc.message.lower() or "can't find end" in exc.message.lower()


class TelegramOutbox:
    """One conversation turn's view of one chat; `close()` when the turn is over.

    Its sends wait for their turn as of when the turn began (the outbox was made), so a
    job begun earlier is served before later ones. With `handoff`, a complete message
    (`SendText`) is handed to the sender and `send` returns at once: a quick answer is
    done once computed, not once the chat's pace lets it out; later operations still
    go out after it, and `close()` waits until it went."""

    def __init__(
        self, renderer: Renderer, chat_id: int, lang: str | None = None, *, handoff: bool = False
    ) -> None:
        self._r = renderer
        self._bot = renderer.bot
        self.chat_id = chat_id
        self.lang = lang
        self._since = renderer.sending.now()
        self._handoff = handoff
        self._handed: asyncio.Task[None] | None = None  # the last message handed over
        self._live: dict[str, _Live] = {}
        self._typing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ entry points
    async def send(self, op: Outbound) -> None:
        """Render `op`; see `bot.io.Outbox` (a video not delivered raises `DeliveryFailed`)."""
        if self._handoff and isinstance(op, SendText):
            self._handed = asyncio.create_task(self._after(self._handed, op))
            return
        await self._settle()
        await self._render(op)

    async def _after(self, previous: asyncio.Task[None] | None, op: Outbound) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            await self._render(op)
        except Exception as exc:  # nobody awaits this task to be told
            log.warning(
                "a handed-over message was not sent",
                extra={"chat_id": self.chat_id, "error": type(exc).__name__},
            )

    async def _settle(self) -> None:
        """Wait until every message handed over has gone (or been given up)."""
        handed = self._handed
        if handed is not None:
            try:
                await asyncio.wait({handed})
            except asyncio.CancelledError:
                handed.cancel()
                raise
            if self._handed is handed:
                self._handed = None

    async def _render(self, op: Outbound) -> None:
        if isinstance(op, SendVideo):
            await self._send_video(op)
            return
        if self._r.closed:
            log.info("bot stopped, operation dropped", extra={"chat_id": self.chat_id})
            return
        try:
            if isinstance(op, Stream):
                await self._stream(
                    op.ref, op.text, op.final, op.buttons, formatted=True, literal=op.literal
                )
            elif isinstance(op, Progress):
                await self._stream(
                    op.ref, op.text, op.done, (), formatted=False, fleeting=op.fleeting
                )
            elif isinstance(op, SendText):
                await self._send_text(op)
            elif isinstance(op, ChatAction):
                await self._chat_action(op)
        except TelegramError as exc:
            # The conversation must not fail because a message could not be shown.
            self._r.stats.error(type(exc).__name__)
            log.warning(
                "telegram refused an operation",
                extra={"chat_id": self.chat_id, "op": type(op).__name__, "error": exc.message},
            )

    async def close(self) -> None:
        """Deliver what is still pending and stop the typing indicator."""
        await self._settle()
        for live in self._live.values():
            await self._stop_flusher(live)
            if live.fleeting and not live.message_ids:
                continue
            if not live.done and live.pending is not None:
                async with live.showing:
                    text, live.pending = live.pending, None
                    if text is not None:
                        with contextlib.suppress(TelegramError):
                            await self._show(live, text, final=True)
        self._stop_typing()

    # ------------------------------------------------------------------ delivery
    async def _deliver(
        self,
        make: Callable[[], Awaitable[T]],
        *,
        must: bool,
        priority: Priority = Priority.ANSWER,
    ) -> T | None:
        """One Bot API call in its turn; a flood error drops it (`_Skipped`) unless it
        `must` arrive, and then it waits exactly `retry_after` for its next turn.

        Returns None when Telegram says the message is already so ("not modified").
        """
        attempts = self._r.config.final_attempts if must else 1
        for attempt in range(attempts):
            if _SLOT_HELD.get():
                _SLOT_HELD.set(False)
            else:
                await self._r.sending.slot(self.chat_id, priority, since=self._since)
            try:
                return await make()
            except RetryAfter as exc:
                wait = min(retry_after_s(exc), self._r.config.max_flood_wait_s)
                self._r.sending.retry_after(self.chat_id, wait)
                if not must:
                    raise _Skipped from None
            except BadRequest as exc:
                if _is_not_modified(exc):
                    return None
                raise
            except NetworkError:
                if not must or attempt >= 2 or self._r.closed:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        raise _Skipped

    async def _send_message(
        self,
        text: str,
        *,
        html: bool,
        buttons: tuple[Button, ...],
        must: bool = True,
        priority: Priority = Priority.ANSWER,
    ) -> Message | None:
        markup = _markup(buttons)

        async def call() -> Message:
            return await self._bot.send_message(
                self.chat_id,
                text,
                parse_mode=ParseMode.HTML if html else None,
                reply_markup=markup,
                disable_web_page_preview=True,
            )

        return await self._deliver(call, must=must, priority=priority)

    async def _edit_message(
        self,
        message_id: int,
        text: str,
        *,
        html: bool,
        buttons: tuple[Button, ...],
        must: bool,
        priority: Priority,
    ) -> None:
        markup = _markup(buttons)

        async def call() -> object:
            return await self._bot.edit_message_text(
                text,
                chat_id=self.chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML if html else None,
                reply_markup=markup,
                disable_web_page_preview=True,
            )

        await self._deliver(call, must=must, priority=priority)

    # ------------------------------------------------------------------ text
    def _pieces(
        self, text: str, formatted: bool, literal: tuple[str, ...] = ()
    ) -> list[tuple[str, str, bool]]:
        """(what to send, its plain fallback, is HTML) for each message of `text`."""
        pieces = []
        for chunk in split_text(text):
            if formatted:
                markup = markdown_to_html(chunk, literal)
                if markup != chunk and html_is_balanced(markup):
                    pieces.append((markup, chunk, True))
                    continue
            pieces.append((chunk, chunk, False))
        return pieces

    async def _send_text(self, op: SendText) -> None:
        if op.timeline is not None:
            await self._send_timeline(op.timeline, op.lang or self.lang)
        pieces = self._pieces(op.text, op.markdown)
        for index, (body, plain, is_html) in enumerate(pieces):
            buttons = op.buttons if index == len(pieces) - 1 else ()
            try:
                await self._send_message(body, html=is_html, buttons=buttons)
            except BadRequest as exc:
                if not (is_html and _is_parse_error(exc)):
                    raise
                await self._send_message(plain, html=False, buttons=buttons)

    async def _stream(
        self,
        ref: str,
        text: str,
        final: bool,
        buttons: tuple[Button, ...],
        *,
        formatted: bool,
        literal: tuple[str, ...] = (),
        fleeting: bool = False,
    ) -> None:
        live = self._live.get(ref)
        if live is None:
            live = self._live[ref] = _Live(formatted=formatted, fleeting=fleeting)
        live.literal = literal
        if live.done:
            return
        if formatted:
            self._keep_typing()  # the agent is still answering
        if not final:
            if not text.strip():
                return
            live.pending = text
            if live.flusher is None or live.flusher.done():
                live.flusher = asyncio.create_task(self._flush(live))
            return
        live.done = True
        live.pending = None
        await self._stop_flusher(live)
        if fleeting and not live.message_ids:
            return  # over before it was shown: nothing to complete
        live.buttons = buttons
        text = text if text.strip() else live.text
        if text.strip():
            async with live.showing:
                await self._show(live, text, final=True)
        if formatted:
            self._stop_typing()

    async def _flush(self, live: _Live) -> None:
        """Show the latest pending text when the chat's turn comes; texts that arrive while
        it waits replace each other, so under congestion the message changes less often.

        Before its first text, a fleeting line waits to see whether it lasts, and an answer
        waits a moment for the rest: a short answer then goes out whole, in one call, not
        as a fragment completed a chat's pace (a second) later."""
        if not live.message_ids:
            cfg = self._r.config
            hold = cfg.answer_first_after_s if live.formatted else 0.0
            await asyncio.sleep(cfg.fleeting_after_s if live.fleeting else hold)
        while live.pending is not None and not live.done:
            async with live.showing:
                create = not live.message_ids
                priority = _priority(final=False, create=create)
                # Cancelled while waiting: nothing was sent.
                await self._r.sending.slot(self.chat_id, priority, since=self._since)
                text, live.pending = live.pending, None
                if text is None:
                    return
                live.sending = True
                _SLOT_HELD.set(True)
                try:
                    await self._show(live, text, final=False, create=create)
                except TelegramError as exc:
                    log.info(
                        "a streaming edit failed",
                        extra={"chat_id": self.chat_id, "error": exc.message},
                    )
                finally:
                    _SLOT_HELD.set(False)
                    live.sending = False

    async def _stop_flusher(self, live: _Live) -> None:
        """A flusher still waiting for its turn is withdrawn (the caller sends the newer
        text instead); one calling Telegram is let finish, so no message is lost."""
        flusher, live.flusher = live.flusher, None
        if flusher is None or flusher.done():
            return
        if not live.sending:
            flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher

    async def _show(self, live: _Live, text: str, *, final: bool, create: bool = False) -> None:
        """Make the live messages read `text`: edit the changed pieces, send new ones."""
        pieces = self._pieces(text, live.formatted and final, live.literal)
        must = final or create
        try:
            for index, (body, plain, is_html) in enumerate(pieces):
                last = index == len(pieces) - 1
                buttons = live.buttons if final and last else ()
                if index < len(live.message_ids):
                    if live.shown[index] == body and not buttons:
                        continue
                    priority = _priority(final=final, create=False)
                    edit = functools.partial(
                        self._edit_message,
                        live.message_ids[index],
                        buttons=buttons,
                        must=must,
                        priority=priority,
                    )
                    await self._html_or_plain(edit, body, plain, is_html)
                    live.shown[index] = body
                else:
                    priority = _priority(final=final, create=True)
                    send = functools.partial(
                        self._send_message, buttons=buttons, must=must, priority=priority
                    )
                    message = await self._html_or_plain(send, body, plain, is_html)
                    if message is None:
                        return
                    live.message_ids.append(message.message_id)
                    live.shown.append(body)
            live.text = text
        except _Skipped:
            if live.pending is None and not live.done:
                live.pending = text

    async def _html_or_plain(
        self, call: Callable[..., Awaitable[T]], body: str, plain: str, is_html: bool
    ) -> T:
        """`call(text, html=…)` with the formatted text; Telegram refusing its formatting,
        once more with the plain text."""
        try:
            return await call(body, html=is_html)
        except BadRequest as exc:
            if not (is_html and _is_parse_error(exc)):
                raise
            log.info("formatting refused, sending plain text", extra={"chat_id": self.chat_id})
            return await call(plain, html=False)

    async def _send_timeline(self, draft: Mapping[str, Any], lang: str | None) -> None:
        """The timeline as a picture, drawn in a thread; the text follows it either way."""
        timeline = timeline_of(draft)
        if timeline.empty:
            return
        png = await asyncio.to_thread(timeline_png, timeline, lang or "en")
        duration = fmt_elapsed(timeline.duration_s)
        canvas = timeline.canvas
        if canvas is None:
            caption = t("timeline_caption_plain", lang, duration=duration)
        else:
            caption = t(
                "timeline_caption",
                lang,
                width=canvas.width,
                height=canvas.height,
                aspect=canvas.aspect,
                duration=duration,
            )

        async def call() -> Message:
            return await self._bot.send_photo(
                self.chat_id, InputFile(png, filename="timeline.png"), caption=caption
            )

        try:
            await self._deliver(call, must=True)
        except TelegramError as exc:
            log.info(
                "timeline picture not sent", extra={"chat_id": self.chat_id, "error": exc.message}
            )

    # ------------------------------------------------------------------ chat actions
    async def _chat_action(self, op: ChatAction) -> None:
        if op.kind == "typing":
            self._keep_typing()
        else:
            await self._action(TgChatAction.UPLOAD_VIDEO)

    async def _action(self, action: str) -> None:
        """A chat action only when the budget has room for it before it would be renewed."""
        if not self._r.action_due(self.chat_id, action):
            return
        try:
            async with asyncio.timeout(self._r.config.typing_every_s):
                await self._r.sending.slot(self.chat_id, Priority.TYPING, since=self._since)
        except TimeoutError:
            return
        try:
            await self._bot.send_chat_action(self.chat_id, action)
        except RetryAfter as exc:
            self._r.sending.retry_after(self.chat_id, retry_after_s(exc))
        except TelegramError as exc:
            log.debug("chat action failed", extra={"chat_id": self.chat_id, "error": exc.message})

    def _keep_typing(self) -> None:
        if self._typing is None or self._typing.done():
            self._typing = asyncio.create_task(self._repeat(TgChatAction.TYPING))

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None

    async def _repeat(self, action: str) -> None:
        """A chat action lasts 5 s on the user's screen: renew it while the work goes on."""
        while True:
            await self._action(action)
            await asyncio.sleep(self._r.config.typing_every_s)

    # ------------------------------------------------------------------ video
    async def _send_video(self, op: SendVideo) -> None:
        """The video, tried again for minutes; then its link; else `DeliveryFailed`."""
        if self._r.closed:
            raise DeliveryFailed("the bot has stopped")
        self._stop_typing()
        uploading = asyncio.create_task(self._repeat(TgChatAction.UPLOAD_VIDEO))
        try:
            thumbnail = await self._thumbnail(op.thumbnail)
            delivered = await deliver_with_retry(
                lambda: self._deliver_video(op, thumbnail),
                self._r.config.video_retry,
                stopped=lambda: self._r.closed,
                chat_id=self.chat_id,
            )
        finally:
            uploading.cancel()
        if delivered:
            self._r.stats.export_delivered()
            return
        await self._send_link(op)

    async def _send_link(self, op: SendVideo) -> None:
        """The video's link; an address the bot refused to fetch (private, or not http(s))
        is never shown: the user is told the video cannot be sent here instead."""
        if self._r.closed or not op.url:
            raise DeliveryFailed("the video could not be sent and has no link")
        lang = op.lang or self.lang
        if await self._target(op.url) is None:
            text, buttons = t("video_unreachable", lang), op.buttons
        else:
            text = op.caption or t("video_link", lang)
            buttons = (*op.buttons, Button(t("open_video", lang), url=op.url))
        try:
            await self._send_message(text, html=False, buttons=buttons)
        except TelegramError as exc:
            self._r.stats.error(type(exc).__name__)
            raise DeliveryFailed(exc.message, permanent=isinstance(exc, Forbidden)) from exc
        log.info("video sent as a link", extra={"chat_id": self.chat_id})

    async def _thumbnail(self, source: str | None) -> InputFile | None:
        """A preview image as Telegram takes one (JPEG, at most 320 px and 200 kB)."""
        if not source:
            return None
        if urlsplit(source).scheme in ("http", "https"):
            data = await self._download(source, 5 * MIB)
        else:
            data = await asyncio.to_thread(_read_local, source, 5 * MIB)
        if data is None:
            return None
        jpeg = await asyncio.to_thread(thumbnail_jpeg, data)
        return InputFile(jpeg, filename="thumbnail.jpg") if jpeg is not None else None

    async def _deliver_video(self, op: SendVideo, thumbnail: InputFile | None = None) -> bool:
        caption = op.caption if len(op.caption) <= CAPTION_LIMIT else ""
        markup = _markup(op.buttons)

        async def send(video: str | InputFile, info: Mp4Info | None = None) -> bool:
            # The file's own header, when we hold its bytes, over what the project meant.
            duration = (info.duration_s if info else None) or op.duration
            width, height = (
                (info.width, info.height) if info and info.width else (op.width, op.height)
            )

            async def call() -> Message:
                return await self._bot.send_video(
                    self.chat_id,
                    video,
                    caption=caption or None,
                    reply_markup=markup,
                    duration=max(1, round(duration)) if duration else None,
                    width=width,
                    height=height,
                    thumbnail=thumbnail,
                    supports_streaming=True,
                    read_timeout=120,
                    write_timeout=120,
                )

            message = await self._deliver(call, must=True)
            if message is None:
                return False
            if op.url and message.video is not None:
                self._r.video_ids[op.url] = message.video.file_id
            if caption != op.caption:
                # The video arrived: a lost long caption must not send it again.
                with contextlib.suppress(TelegramError):
                    await self._send_message(op.caption, html=False, buttons=())
            return True

        cfg = self._r.config
        if op.path:
            data = await asyncio.to_thread(_read_local, op.path, cfg.upload_video_bytes)
            if data is None:
                return False
            return await send(InputFile(data, filename=os.path.basename(op.path)), probe_mp4(data))
        if not op.url or urlsplit(op.url).scheme not in ("http", "https"):
            return False
        known = self._r.video_ids.get(op.url)
        if known is not None:
            with contextlib.suppress(BadRequest):
                return await send(known)
        size = await self._remote_size(op.url)
        if size is not None and size <= cfg.url_video_bytes:
            try:
                return await send(op.url)
            except BadRequest as exc:
                log.info("Telegram could not fetch the video URL", extra={"error": exc.message})
        if size is not None and size > cfg.upload_video_bytes:
            return False
        data = await self._download(op.url, cfg.upload_video_bytes)
        if data is None:
            return False
        return await send(InputFile(data, filename="video.mp4"), probe_mp4(data))

    async def _target(self, url: str) -> _Target | None:
        """Where a download may go: http(s) only, and unless operators allow private
        addresses, every address the host resolves to must be public; the request is then
        pinned to one checked address so a second DNS answer cannot point it elsewhere."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            return None
        if self._r.config.allow_private_downloads:
            return _Target(url=url, headers={}, extensions={})
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, ValueError, UnicodeError):
            return None
        addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
        if not addresses or not all(is_public_address(a) for a in addresses):
            return None
        pinned = addresses[0]
        netloc = f"[{pinned}]" if ":" in pinned else pinned
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        host_header = parts.netloc.rsplit("@", 1)[-1]
        return _Target(
            url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
            headers={"Host": host_header},
            extensions={"sni_hostname": host} if parts.scheme == "https" else {},
        )

    async def _remote_size(self, url: str) -> int | None:
        target = await self._target(url)
        if target is None:
            return None
        try:
            async with asyncio.timeout(self._r.config.head_timeout_s):
                response = await self._r.http.head(
                    target.url,
                    headers=target.headers,
                    extensions=target.extensions,
                    follow_redirects=False,
                    timeout=self._r.config.head_timeout_s,
                )
        except (httpx.HTTPError, TimeoutError):
            return None
        length = response.headers.get("content-length")
        if response.status_code >= 400 or length is None or not length.isdigit():
            return None
        return int(length)

    async def _download(self, url: str, cap: int) -> bytes | None:
        """The video's bytes (http(s) only, public addresses unless allowed, at most `cap`,
        within the download deadline), or None to fall back to a link."""
        target = await self._target(url)
        if target is None:
            log.warning(
                "refusing to download from a non-http or private address",
                extra={"chat_id": self.chat_id},
            )
            return None
        chunks: list[bytes] = []
        total = 0
        timeout = self._r.config.download_timeout_s
        try:
            async with (
                asyncio.timeout(timeout),
                self._r.http.stream(
                    "GET",
                    target.url,
                    headers=target.headers,
                    extensions=target.extensions,
                    follow_redirects=False,
                    timeout=timeout,
                ) as resp,
            ):
                if resp.status_code != 200:
                    return None
                length = resp.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > cap:
                    return None
                async for chunk in resp.aiter_bytes():
                    total += len(chunk)
                    if total > cap:
                        log.warning("video larger than the cap", extra={"chat_id": self.chat_id})
                        return None
                    chunks.append(chunk)
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("video download failed", extra={"error": type(exc).__name__})
            return None
        return b"".join(chunks)


@dataclass(frozen=True)
class _Target:
    """A checked download URL (maybe rewritten to a pinned address) and what it needs."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(text: str) -> bool:
    """A globally routable unicast address, looking inside IPv6 forms that carry an IPv4
    one (mapped, 6to4, Teredo, NAT64), so none of them smuggles in a private address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None and not is_public_address(str(inner)):
            return False
    return address.is_global and not address.is_multicast
