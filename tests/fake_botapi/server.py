"""A small Telegram Bot API server on 127.0.0.1 that speaks the real wire format.

The unmodified python-telegram-bot `Application` talks to it through `base_url` and
`base_file_url`. Tests act as users through its Python methods (send text, photos,
albums, documents, press buttons) and read back what the bot did (messages with every
edit and its time, chat actions, uploaded videos, answered callback queries).

Requests are accepted the ways Telegram accepts them: query string, urlencoded form,
JSON body or multipart upload. Failures are real Bot API errors (`ok: false`,
`error_code`, `description`, `parameters.retry_after`), including flood errors on demand.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from tests.fake_botapi.markup import ParseError, visible_text

__all__ = [
    "MB",
    "ApiCall",
    "BotMessage",
    "FakeBotApi",
    "StoredFile",
    "TgUser",
]

MB = 1024 * 1024
DOWNLOAD_LIMIT = 20 * MB
UPLOAD_LIMIT = 50 * MB
URL_LIMIT = 20 * MB
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "inline_query",
    "my_chat_member",
    "chat_member",
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)

T = TypeVar("T")


class ApiError(Exception):
    """A Bot API failure, rendered exactly as the real server renders it."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


@dataclass
class TgUser:
    id: int
    first_name: str = "Ann"
    language_code: str | None = "en"
    username: str | None = None
    is_bot: bool = False

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "is_bot": self.is_bot,
            "first_name": self.first_name,
        }
        if self.username:
            body["username"] = self.username
        if self.language_code:
            body["language_code"] = self.language_code
        return body


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    size: int
    data: bytes
    path: str


@dataclass
class Edit:
    text: str
    at: float
    parse_mode: str | None = None


@dataclass
class BotMessage:
    """A message the bot sent, with the history of its text (first entry = as sent)."""

    chat_id: int
    message_id: int
    kind: str  # text | video | photo | document
    created_at: float
    history: list[Edit] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    media: dict[str, Any] | None = None
    media_bytes: int | None = None
    media_source: str | None = None  # upload | url | file_id
    raw: str = ""
    parse_mode: str | None = None

    @property
    def text(self) -> str:
        return self.history[-1].text if self.history else ""

    @property
    def edits(self) -> list[Edit]:
        return self.history[1:]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float
    ok: bool = True
    error_code: int | None = None
    description: str | None = None

    @property
    def chat_id(self) -> int | None:
        raw = self.params.get("chat_id")
        try:
            return int(raw) if raw is not None else None
        except (TypeError, ValueError):
            return None


@dataclass
class CallbackQuery:
    id: str
    chat_id: int
    message_id: int
    data: str
    pressed_at: float
    answered_at: float | None = None
    answer: dict[str, Any] | None = None


@dataclass
class _Flood:
    retry_after: int
    times: int
    chat_id: int | None
    methods: frozenset[str] | None


_SENDING = frozenset(
    {"sendMessage", "editMessageText", "sendVideo", "sendPhoto", "sendDocument", "sendChatAction"}
)


class FakeBotApi:
    """One bot's Bot API on 127.0.0.1; start it, point the bot at `base_url`/`base_file_url`."""

    def __init__(
        self,
        token: str = "123456789:AAFakeTokenForLocalTestsOnly-0123456789",
        username: str = "nemo_test_bot",
        webhook_retry_s: float = 0.3,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.webhook_retry_s = webhook_retry_s
        self.calls: list[ApiCall] = []
        self.messages: list[BotMessage] = []
        self.callback_queries: dict[str, CallbackQuery] = {}
        self.files: dict[str, StoredFile] = {}
        self.downloads: list[str] = []
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.webhook_url: str = ""
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self.webhook_calling: tuple[int, str] | None = None  # (update_id, URL) unanswered yet
        self.balanced_targets: list[str] = []
        self.balanced_deliveries: list[tuple[int, str, int]] = []  # (update_id, URL, status)
        self._next_target = 0
        self._updates: list[dict[str, Any]] = []
        self._allowed: list[str] | None = None
        self._update_ids = itertools.count(700_000_001)
        self._msg_ids: dict[int, itertools.count[int]] = {}
        self._user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._msg_index: dict[tuple[int, int], BotMessage] = {}
        self._floods: list[_Flood] = []
        self._failures: list[list[Any]] = []
        self._parse_refusals = 0
        self._rate_limits: dict[int, tuple[float, int]] = {}
        self._global_limit: tuple[int, float] | None = None  # (sends per window, window s)
        self._global_sends: collections.deque[float] = collections.deque()
        self._chat_interval: tuple[float, int] | None = None  # every chat's (interval, retry)
        self._chat_sends: dict[int, float] = {}  # last message (not chat action) per chat
        self.on_message: Callable[[BotMessage], None] | None = None  # sees each sent message
        self._last_send: dict[int, float] = {}
        self._pulse: asyncio.Future[None] | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self.port = 0

    # ------------------------------------------------------------------ life cycle
    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What PTB's `base_url` takes: the token is appended by PTB."""
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.root}/file/bot"

    async def start(self) -> FakeBotApi:
        app = web.Application(client_max_size=UPLOAD_LIMIT + MB)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ switches
    def flood(
        self,
        retry_after: int = 1,
        *,
        times: int = 1,
        chat_id: int | None = None,
        methods: Iterable[str] | None = ("sendMessage", "editMessageText"),
    ) -> None:
        """The next `times` matching calls fail with 429 Too Many Requests."""
        self._floods.append(
            _Flood(retry_after, times, chat_id, frozenset(methods) if methods else None)
        )

    def rate_limit(self, chat_id: int, min_interval_s: float, retry_after: int = 1) -> None:
        """Calls that send to `chat_id` faster than once per `min_interval_s` get a 429."""
        self._rate_limits[chat_id] = (min_interval_s, retry_after)

    def telegram_limits(
        self,
        per_second: int = 30,
        chat_interval_s: float = 1.0,
        retry_after: int = 1,
    ) -> None:
        """Telegram's own limits: past `per_second` sends in any second (all chats together)
        or a chat sent to again within `chat_interval_s`, a 429 with `retry_after`."""
        self._global_limit = (per_second, 1.0)
        self._chat_interval = (chat_interval_s, retry_after)

    def balance(self, targets: Sequence[str]) -> None:
        """Load-balancer mode: deliver each webhook update to the next of `targets` in turn
        (whatever URL the bots set), as a balancer in front of several replicas does; a
        target that does not answer 2xx is skipped and the update goes to the next one."""
        self.balanced_targets = list(targets)
        self._next_target = 0

    def _webhook_target(self) -> str:
        if not self.balanced_targets:
            return self.webhook_url
        url = self.balanced_targets[self._next_target % len(self.balanced_targets)]
        self._next_target += 1
        return url

    def clear_limits(self) -> None:
        self._floods.clear()
        self._rate_limits.clear()
        self._global_limit = None
        self._chat_interval = None
        self._global_sends.clear()
        self._chat_sends.clear()

    def fail(self, method: str, code: int = 400, description: str = "", times: int = 1) -> None:
        """The next `times` calls of `method` fail with this Bot API error."""
        text = description or ("Bad Request: " if code == 400 else "") + "injected failure"
        self._failures.append([method, code, text, times])

    def clear_failures(self) -> None:
        """Every method works again."""
        self._failures.clear()

    def refuse_formatting(self, times: int = 1) -> None:
        """The next `times` formatted messages are refused as Telegram refuses broken markup."""
        self._parse_refusals += times

    # ------------------------------------------------------------------ users act
    def user(
        self, user_id: int, language_code: str | None = "en", first_name: str = "Ann"
    ) -> TgUser:
        return TgUser(id=user_id, first_name=first_name, language_code=language_code)

    def group(self, chat_id: int, title: str = "Video club") -> dict[str, Any]:
        assert chat_id < 0, "group chat ids are negative"
        return {"id": chat_id, "type": "supergroup", "title": title}

    def _private(self, user: TgUser) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": user.id, "type": "private", "first_name": user.first_name}
        if user.username:
            chat["username"] = user.username
        return chat

    def _next_msg_id(self, chat_id: int) -> int:
        counter = self._msg_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _user_message(
        self,
        user: TgUser,
        chat: dict[str, Any] | None,
        body: dict[str, Any],
        reply_to: int | None,
    ) -> dict[str, Any]:
        chat = chat or self._private(user)
        message: dict[str, Any] = {
            "message_id": self._next_msg_id(chat["id"]),
            "from": user.as_json(),
            "chat": chat,
            "date": int(time.time()),
            **body,
        }
        if reply_to is not None:
            replied = self._msg_index.get((chat["id"], reply_to))
            if replied is not None:
                message["reply_to_message"] = self._message_json(replied)
            else:
                original = self._user_messages.get((chat["id"], reply_to))
                if original is not None:
                    message["reply_to_message"] = original
        self._user_messages[(chat["id"], message["message_id"])] = message
        return message

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update (given a fresh `update_id` unless it has one)."""
        update.setdefault("update_id", next(self._update_ids))
        self._updates.append(update)
        self._notify()
        return update

    def resend(self, update: dict[str, Any]) -> dict[str, Any]:
        """Deliver the same update again, as Telegram does after a failed webhook call."""
        copy = json.loads(json.dumps(update))
        self._updates.append(copy)
        self._notify()
        return copy

    def send_text(
        self,
        user: TgUser,
        text: str,
        *,
        chat: dict[str, Any] | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        entities = _command_entities(text) + self._mention_entities(text)
        if entities:
            body["entities"] = entities
        return self.push_update({"message": self._user_message(user, chat, body, reply_to)})

    def text_update(self, user: TgUser, text: str) -> dict[str, Any]:
        """A text message update as Telegram would deliver it, not queued: for posting to a
        bot's webhook directly, as many connections at once as the caller likes."""
        body: dict[str, Any] = {"text": text}
        entities = _command_entities(text)
        if entities:
            body["entities"] = entities
        message = self._user_message(user, None, body, None)
        return {"update_id": next(self._update_ids), "message": message}

    def send_command(
        self, user: TgUser, command: str, *, chat: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        text = command if command.startswith("/") else f"/{command}"
        return self.send_text(user, text, chat=chat)

    def add_file(
        self, data: bytes, *, size: int | None = None, path_hint: str = "documents/file"
    ) -> StoredFile:
        """Register bytes as a Telegram file; `size` may claim more than `data` holds."""
        file_id = "BQAC" + uuid.uuid4().hex
        unique = "AgAD" + uuid.uuid4().hex[:12]
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            size=len(data) if size is None else size,
            data=data,
            path=f"{path_hint}_{uuid.uuid4().hex[:8]}",
        )
        self.files[file_id] = stored
        return stored

    def photo_sizes(
        self, data: bytes, sizes: Sequence[tuple[int, int]] = ((90, 90), (320, 320), (1280, 1280))
    ) -> list[dict[str, Any]]:
        """Telegram's thumbnails of one photo: smaller sizes hold a prefix of the bytes."""
        result = []
        for index, (width, height) in enumerate(sizes):
            part = data if index == len(sizes) - 1 else data[: max(1, len(data) // (4 - index))]
            stored = self.add_file(part, path_hint="photos/file")
            result.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": width,
                    "height": height,
                    "file_size": stored.size,
                }
            )
        return result

    def send_photo(
        self,
        user: TgUser,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        chat: dict[str, Any] | None = None,
        sizes: Sequence[tuple[int, int]] = ((90, 90), (320, 320), (1280, 1280)),
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"photo": self.photo_sizes(data, sizes)}
        if caption is not None:
            body["caption"] = caption
            entities = self._mention_entities(caption)
            if entities:
                body["caption_entities"] = entities
        if media_group_id is not None:
            body["media_group_id"] = media_group_id
        return self.push_update({"message": self._user_message(user, chat, body, None)})

    def send_album(
        self,
        user: TgUser,
        photos: Sequence[bytes],
        *,
        caption: str | None = None,
        chat: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        group = str(next(self._update_ids))
        return [
            self.send_photo(
                user,
                data,
                caption=caption if index == 0 else None,
                media_group_id=group,
                chat=chat,
            )
            for index, data in enumerate(photos)
        ]

    def _send_file(
        self,
        kind: str,
        user: TgUser,
        data: bytes,
        *,
        name: str | None,
        mime: str | None,
        file_size: int | None,
        caption: str | None,
        chat: dict[str, Any] | None,
        extra: dict[str, Any] | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        stored = self.add_file(data, size=file_size, path_hint=f"{kind}s/file")
        media: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            **(extra or {}),
        }
        if name is not None:
            media["file_name"] = name
        if mime is not None:
            media["mime_type"] = mime
        body: dict[str, Any] = {kind: media}
        if caption is not None:
            body["caption"] = caption
        if media_group_id is not None:
            body["media_group_id"] = media_group_id
        return self.push_update({"message": self._user_message(user, chat, body, None)})

    def send_document(
        self,
        user: TgUser,
        name: str,
        data: bytes,
        *,
        mime: str | None = None,
        file_size: int | None = None,
        caption: str | None = None,
        chat: dict[str, Any] | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        return self._send_file(
            "document",
            user,
            data,
            name=name,
            mime=mime,
            file_size=file_size,
            caption=caption,
            chat=chat,
            media_group_id=media_group_id,
        )

    def send_video(
        self,
        user: TgUser,
        data: bytes,
        *,
        name: str | None = "clip.mp4",
        file_size: int | None = None,
        caption: str | None = None,
        chat: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        extra = {"width": 1280, "height": 720, "duration": 5}
        return self._send_file(
            "video",
            user,
            data,
            name=name,
            mime="video/mp4",
            file_size=file_size,
            caption=caption,
            chat=chat,
            extra=extra,
        )

    def send_audio(
        self,
        user: TgUser,
        data: bytes,
        *,
        name: str | None = "song.mp3",
        file_size: int | None = None,
        chat: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._send_file(
            "audio",
            user,
            data,
            name=name,
            mime="audio/mpeg",
            file_size=file_size,
            caption=None,
            chat=chat,
            extra={"duration": 30},
        )

    def send_voice(
        self,
        user: TgUser,
        data: bytes,
        *,
        file_size: int | None = None,
        chat: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._send_file(
            "voice",
            user,
            data,
            name=None,
            mime="audio/ogg",
            file_size=file_size,
            caption=None,
            chat=chat,
            extra={"duration": 3},
        )

    def press(
        self,
        user: TgUser,
        message: BotMessage,
        data: str,
    ) -> CallbackQuery:
        """Press an inline button of a bot message (the data must be one of its buttons)."""
        if data not in {b.get("callback_data") for b in message.buttons}:
            raise AssertionError(f"message {message.message_id} has no button with data {data!r}")
        query_id = str(next(self._update_ids)) + "0"
        query = CallbackQuery(
            query_id, message.chat_id, message.message_id, data, pressed_at=time.monotonic()
        )
        self.callback_queries[query_id] = query
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.as_json(),
                    "message": self._message_json(message),
                    "chat_instance": str(message.chat_id),
                    "data": data,
                }
            }
        )
        return query

    # ------------------------------------------------------------------ reads
    def sent(self, chat_id: int, kind: str | None = None) -> list[BotMessage]:
        return [m for m in self.messages if m.chat_id == chat_id and (kind in (None, m.kind))]

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.sent(chat_id, "text")]

    def videos(self, chat_id: int) -> list[BotMessage]:
        return self.sent(chat_id, "video")

    def chat_actions(self, chat_id: int) -> list[tuple[str, float]]:
        return [
            (str(c.params.get("action")), c.at)
            for c in self.calls
            if c.method == "sendChatAction" and c.ok and c.chat_id == chat_id
        ]

    def calls_of(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    async def wait_for(
        self,
        probe: Callable[[], T | bool | None],
        timeout: float = 10.0,
        what: str = "condition",
    ) -> T:
        """Poll `probe` until it returns something truthy; fail the test after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_text(
        self, chat_id: int, needle: str, timeout: float = 10.0, *, after: int = 0
    ) -> BotMessage:
        """The first bot text message (from index `after`) whose current text has `needle`."""

        def probe() -> BotMessage | None:
            for message in self.sent(chat_id, "text")[after:]:
                if needle in message.text:
                    return message
            return None

        return await self.wait_for(probe, timeout, f"a message containing {needle!r}")

    # ------------------------------------------------------------------ HTTP
    def _notify(self) -> None:
        if self._pulse is not None and not self._pulse.done():
            self._pulse.set_result(None)
        self._pulse = None

    async def _wait_pulse(self, timeout: float) -> None:
        if self._pulse is None:
            self._pulse = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pulse), timeout)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        now = time.monotonic()
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params, uploads = await _read_params(request)
            call = ApiCall(method, {k: v for k, v in params.items()}, now)
            self.calls.append(call)
            try:
                self._check_flood(method, params, now)
                self._check_failures(method, params)
                handler = self._handlers().get(method.lower())
                if handler is None:
                    raise ApiError(404, "Not Found")
                result = await handler(params, uploads)
            except ApiError as exc:
                call.ok = False
                call.error_code = exc.code
                call.description = exc.description
                raise
            if method in _SENDING and call.chat_id is not None:
                self._last_send[call.chat_id] = now
            return web.json_response({"ok": True, "result": result})
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.code)

    def _check_failures(self, method: str, params: dict[str, Any]) -> None:
        for failure in list(self._failures):
            if failure[0] == method:
                failure[3] -= 1
                if failure[3] <= 0:
                    self._failures.remove(failure)
                raise ApiError(failure[1], failure[2])
        if self._parse_refusals and params.get("parse_mode"):
            self._parse_refusals -= 1
            raise bad_request("can't parse entities: Can't find end of the entity at byte offset 3")

    def _check_flood(self, method: str, params: dict[str, Any], now: float) -> None:
        if method not in _SENDING:
            return
        chat_id = _int_or_none(params.get("chat_id"))
        for flood in list(self._floods):
            if flood.methods is not None and method not in flood.methods:
                continue
            if flood.chat_id is not None and flood.chat_id != chat_id:
                continue
            flood.times -= 1
            if flood.times <= 0:
                self._floods.remove(flood)
            raise ApiError(
                429,
                f"Too Many Requests: retry after {flood.retry_after}",
                retry_after=flood.retry_after,
            )
        if method == "sendChatAction":
            return
        if chat_id is not None and self._chat_interval is not None:
            interval, retry_after = self._chat_interval
            last = self._chat_sends.get(chat_id)
            if last is not None and now - last < interval:
                wait = max(retry_after, math.ceil(interval - (now - last)))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if self._global_limit is not None:
            limit, window = self._global_limit
            sends = self._global_sends
            while sends and now - sends[0] >= window:
                sends.popleft()
            if len(sends) >= limit:
                wait = max(1, math.ceil(window - (now - sends[0])))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
            sends.append(now)
        if chat_id is not None and self._chat_interval is not None:
            self._chat_sends[chat_id] = now
        if chat_id is not None and chat_id in self._rate_limits:
            interval, retry_after = self._rate_limits[chat_id]
            last = self._last_send.get(chat_id)
            if last is not None and now - last < interval:
                wait = max(retry_after, math.ceil(interval - (now - last)))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    def _handlers(
        self,
    ) -> dict[str, Callable[[dict[str, Any], dict[str, bytes]], Awaitable[Any]]]:
        return {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "sendchataction": self._send_chat_action,
            "sendphoto": self._send_media("photo"),
            "sendvideo": self._send_media("video"),
            "senddocument": self._send_media("document"),
            "getfile": self._get_file,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
        }

    async def _true(self, params: dict[str, Any], uploads: dict[str, bytes]) -> bool:
        return True

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Nemo",
            "username": self.username,
        }

    async def _get_me(self, params: dict[str, Any], uploads: dict[str, bytes]) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    # -- updates
    async def _delete_webhook(self, params: dict[str, Any], uploads: dict[str, bytes]) -> bool:
        self.webhook_url = ""
        self.webhook_secret = None
        if _bool(params.get("drop_pending_updates")):
            self._updates.clear()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        return True

    async def _set_webhook(self, params: dict[str, Any], uploads: dict[str, bytes]) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params, uploads)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not all(c.isalnum() or c in "_-" for c in str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        self.webhook_url = url
        self.webhook_secret = str(secret) if secret else None
        allowed = _json_list(params.get("allowed_updates"))
        if allowed is not None:
            self._allowed = allowed or None
        if _bool(params.get("drop_pending_updates")):
            self._updates.clear()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        self._notify()
        return True

    async def _get_webhook_info(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> dict[str, Any]:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _deliverable(self, offset: int | None) -> list[dict[str, Any]]:
        if offset is not None:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if self._allowed:
            kept = []
            for update in self._updates:
                kind = next((k for k in update if k != "update_id"), "")
                if kind in self._allowed:
                    kept.append(update)
            self._updates = kept
        return list(self._updates)

    async def _get_updates(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _int_or_none(params.get("offset"))
        limit = _int_or_none(params.get("limit")) or 100
        timeout = float(params.get("timeout") or 0)
        allowed = _json_list(params.get("allowed_updates"))
        if allowed is not None:
            self._allowed = allowed or None
        deadline = time.monotonic() + timeout
        while True:
            ready = self._deliverable(offset)
            if ready or self._closing or self.webhook_url:
                return ready[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._wait_pulse(remaining)

    async def _deliver_webhooks(self) -> None:
        """Telegram's side of a webhook: POST each update in order, retry until 2xx."""
        assert self._session is not None
        while not self._closing and self.webhook_url:
            ready = self._deliverable(None)
            if not ready:
                await self._wait_pulse(1.0)
                continue
            update = ready[0]
            headers = {"Content-Type": "application/json"}
            if self.webhook_secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
            target = self._webhook_target()
            self.webhook_calling = (update["update_id"], target)
            try:
                async with self._session.post(
                    target, data=json.dumps(update), headers=headers
                ) as response:
                    status = response.status
            except (aiohttp.ClientError, OSError):
                status = 0
            finally:
                self.webhook_calling = None
            self.webhook_deliveries.append((update["update_id"], status))
            if self.balanced_targets:
                self.balanced_deliveries.append((update["update_id"], target, status))
            if 200 <= status < 300:
                with contextlib.suppress(ValueError):
                    self._updates.remove(update)
            else:
                await asyncio.sleep(self.webhook_retry_s)

    # -- messages
    def _chat_json(self, chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "Video club"}
        return {"id": chat_id, "type": "private", "first_name": "Ann"}

    def _message_json(self, message: BotMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self._bot_user(),
            "chat": self._chat_json(message.chat_id),
            "date": int(time.time()),
        }
        if message.kind == "text":
            body["text"] = message.text
        else:
            assert message.media is not None
            body[message.kind] = message.media
            if message.text:
                body["caption"] = message.text
        if message.edits:
            body["edit_date"] = int(time.time())
        if message.reply_markup:
            body["reply_markup"] = message.reply_markup
        return body

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = _int_or_none(params.get("chat_id"))
        if chat_id is None:
            raise bad_request("chat not found")
        return chat_id

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        raw = params.get("reply_markup")
        if raw in (None, ""):
            return None
        markup = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
                if data is None and not button.get("url"):
                    raise bad_request(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
        return markup

    def _visible(self, raw: str, parse_mode: str | None, limit: int, what: str) -> str:
        try:
            text = visible_text(raw, parse_mode)
        except ParseError as exc:
            raise bad_request(str(exc)) from None
        if what == "text" and not text.strip():
            raise bad_request("message text is empty")
        if len(text.encode("utf-16-le")) // 2 > limit:
            raise bad_request(
                "message is too long" if what == "text" else "message caption is too long"
            )
        return text

    async def _send_message(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        raw = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        text = self._visible(raw, parse_mode, TEXT_LIMIT, "text")
        now = time.monotonic()
        message = BotMessage(
            chat_id=chat_id,
            message_id=self._next_msg_id(chat_id),
            kind="text",
            created_at=now,
            history=[Edit(text, now, parse_mode)],
            reply_markup=self._markup(params),
            raw=raw,
            parse_mode=parse_mode,
        )
        self._remember(message)
        return self._message_json(message)

    def _remember(self, message: BotMessage) -> None:
        self.messages.append(message)
        self._msg_index[(message.chat_id, message.message_id)] = message
        if self.on_message is not None:
            self.on_message(message)

    async def _edit_message_text(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        message_id = _int_or_none(params.get("message_id"))
        message = self._msg_index.get((chat_id, message_id or 0))
        if message is None:
            raise bad_request("message to edit not found")
        if message.kind != "text":
            raise bad_request("there is no text in the message to edit")
        raw = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        text = self._visible(raw, parse_mode, TEXT_LIMIT, "text")
        markup = self._markup(params)
        same_format = (message.raw, message.parse_mode) == (raw, parse_mode) or (
            not parse_mode and not message.parse_mode
        )
        if text == message.text and same_format and markup == message.reply_markup:
            raise bad_request(NOT_MODIFIED)
        message.history.append(Edit(text, time.monotonic(), parse_mode))
        message.raw = raw
        message.parse_mode = parse_mode
        message.reply_markup = markup
        return self._message_json(message)

    async def _send_chat_action(self, params: dict[str, Any], uploads: dict[str, bytes]) -> bool:
        self._chat_id(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _send_media(
        self, kind: str
    ) -> Callable[[dict[str, Any], dict[str, bytes]], Awaitable[dict[str, Any]]]:
        async def handler(params: dict[str, Any], uploads: dict[str, bytes]) -> dict[str, Any]:
            chat_id = self._chat_id(params)
            value = params.get(kind)
            data: bytes
            if kind in uploads:
                data, source = uploads[kind], "upload"
            elif isinstance(value, str) and value.startswith("attach://"):
                name = value.removeprefix("attach://")
                if name not in uploads:
                    raise bad_request(f"wrong remote file identifier specified: {value}")
                data, source = uploads[name], "upload"
            elif isinstance(value, str) and value.startswith(("http://", "https://")):
                data, source = await self._fetch_url(
                    value, 5 * MB if kind == "photo" else URL_LIMIT
                )
            elif isinstance(value, str) and value in self.files:
                data, source = self.files[value].data, "file_id"
            else:
                raise bad_request("wrong file identifier/HTTP URL specified")
            if len(data) > UPLOAD_LIMIT:
                raise ApiError(413, "Request Entity Too Large")
            if not data:
                raise bad_request("file must be non-empty")
            raw = str(params.get("caption") or "")
            parse_mode = params.get("parse_mode") or None
            caption = self._visible(raw, parse_mode, CAPTION_LIMIT, "caption") if raw else ""
            stored = self.add_file(data, path_hint=f"{kind}s/file")
            media: dict[str, Any] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(data),
            }
            if kind == "video":
                media.update(
                    width=_int_or_none(params.get("width")) or 1280,
                    height=_int_or_none(params.get("height")) or 720,
                    duration=_int_or_none(params.get("duration")) or 5,
                    mime_type="video/mp4",
                )
                thumbnail = self._thumbnail(uploads.get("thumbnail"), params, uploads)
                if thumbnail is not None:
                    media["thumbnail"] = thumbnail
            if kind == "document":
                media.update(file_name="file")
            payload: Any = [{**media, "width": 1280, "height": 1280}] if kind == "photo" else media
            now = time.monotonic()
            message = BotMessage(
                chat_id=chat_id,
                message_id=self._next_msg_id(chat_id),
                kind=kind,
                created_at=now,
                history=[Edit(caption, now, parse_mode)],
                reply_markup=self._markup(params),
                media=payload,
                media_bytes=len(data),
                media_source=source,
                raw=raw,
                parse_mode=parse_mode,
            )
            self._remember(message)
            return self._message_json(message)

        return handler

    def _thumbnail(
        self, data: bytes | None, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> dict[str, Any] | None:
        """A thumbnail uploaded with a video (as its own part, or `attach://<part>`), checked
        as Telegram does: JPEG, at most 200 kB."""
        value = params.get("thumbnail")
        if data is None and isinstance(value, str) and value.startswith("attach://"):
            data = uploads.get(value.removeprefix("attach://"))
            if data is None:
                raise bad_request(f"wrong remote file identifier specified: {value}")
        if data is None:
            return None
        if not data.startswith(b"\xff\xd8") or len(data) > 200 * 1024:
            raise bad_request("THUMBNAIL_INVALID")
        stored = self.add_file(data, path_hint="thumbnails/file")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(data),
            "width": 320,
            "height": 320,
        }

    async def _fetch_url(self, url: str, limit: int) -> tuple[bytes, str]:
        """Telegram fetches a file sent by URL itself; too big or unreachable is an error."""
        assert self._session is not None
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    raise bad_request("failed to get HTTP URL content")
                chunks = []
                total = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    total += len(chunk)
                    if total > limit:
                        raise bad_request("failed to get HTTP URL content")
                    chunks.append(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError):
            raise bad_request("failed to get HTTP URL content") from None
        return b"".join(chunks), "url"

    # -- files
    async def _get_file(self, params: dict[str, Any], uploads: dict[str, bytes]) -> dict[str, Any]:
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.path == path:
                self.downloads.append(path)
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    # -- callbacks and commands
    async def _answer_callback_query(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> bool:
        query = self.callback_queries.get(str(params.get("callback_query_id") or ""))
        if query is None or query.answered_at is not None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        query.answered_at = time.monotonic()
        query.answer = {k: v for k, v in params.items() if k != "callback_query_id"}
        return True

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope")
        scope_json = json.loads(scope) if isinstance(scope, str) else scope or {}
        return (str(scope_json.get("type", "default")), str(params.get("language_code") or ""))

    async def _set_my_commands(self, params: dict[str, Any], uploads: dict[str, bytes]) -> bool:
        raw = params.get("commands")
        commands = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not (1 <= len(name) <= 32) or not all(
                c.islower() or c.isdigit() or c == "_" for c in name
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        language = str(params.get("language_code") or "")
        if language and (len(language) != 2 or not language.isalpha()):
            raise bad_request("LANG_CODE_INVALID")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(
        self, params: dict[str, Any], uploads: dict[str, bytes]
    ) -> list[dict[str, str]]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: dict[str, Any], uploads: dict[str, bytes]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _mention_entities(self, text: str) -> list[dict[str, Any]]:
        mention = f"@{self.username}"
        at = text.find(mention)
        if at < 0:
            return []
        return [{"type": "mention", "offset": _utf16_len(text[:at]), "length": len(mention)}]


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Parameters from the query string, JSON, urlencoded or multipart body, as Telegram reads."""
    params: dict[str, Any] = dict(request.query)
    uploads: dict[str, bytes] = {}
    if request.method != "POST" or not request.can_read_body:
        return params, uploads
    ctype = request.content_type
    if ctype == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif ctype == "multipart/form-data":
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                uploads[part.name] = bytes(await part.read())
            else:
                params[part.name] = await part.text()
    else:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                uploads[key] = value.file.read()
            else:
                params[key] = value
    return params, uploads


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


def _json_list(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, list):
        raise bad_request("can't parse allowed updates")
    return [str(v) for v in parsed if str(v) in UPDATE_TYPES]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[dict[str, Any]]:
    if not text.startswith("/"):
        return []
    word = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": _utf16_len(word)}]
