"""Telegram updates as the conversation's plain inbound messages.

Files are described from the update alone (name, type, size) so the conversation can
refuse them before anything is fetched; their bytes are read from Telegram only when
the conversation asks, and never past Telegram's 20 MB download limit. The download URL
holds the bot token, so it never leaves this module: only bytes do.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from telegram import Bot, CallbackQuery, Message, MessageEntity, Update
from telegram.error import BadRequest

from bot.io import Attachment, DownloadTooLarge, FileUnreadable, Inbound

__all__ = [
    "AlbumCollector",
    "TooLarge",
    "addressed_text",
    "bound_callback",
    "message_files",
    "reader_for",
    "to_inbound",
]


@dataclass(frozen=True)
class TooLarge:
    """A file Telegram will not let the bot download: refused before `getFile`."""

    name: str
    mime: str | None
    size: int
    limit: int


@dataclass(frozen=True)
class _FileRef:
    file_id: str
    name: str
    mime: str | None
    size: int | None


def _refs(message: Message) -> list[_FileRef]:
    """Every file of a message; for a photo only its largest size."""
    refs: list[_FileRef] = []
    if message.photo:
        best = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        refs.append(
            _FileRef(best.file_id, f"photo_{best.file_unique_id}.jpg", "image/jpeg", best.file_size)
        )
    if message.document is not None:
        doc = message.document
        name = doc.file_name or f"file_{doc.file_unique_id}"
        mime = doc.mime_type or mimetypes.guess_type(name)[0]
        refs.append(_FileRef(doc.file_id, name, mime, doc.file_size))
    if message.video is not None:
        video = message.video
        mime = video.mime_type or "video/mp4"
        ext = mimetypes.guess_extension(mime) or ".mp4"
        name = video.file_name or f"video_{video.file_unique_id}{ext}"
        refs.append(_FileRef(video.file_id, name, mime, video.file_size))
    if message.video_note is not None:
        note = message.video_note
        refs.append(
            _FileRef(note.file_id, f"video_{note.file_unique_id}.mp4", "video/mp4", note.file_size)
        )
    if message.audio is not None:
        audio = message.audio
        mime = audio.mime_type or "audio/mpeg"
        name = audio.file_name or f"audio_{audio.file_unique_id}.mp3"
        refs.append(_FileRef(audio.file_id, name, mime, audio.file_size))
    if message.voice is not None:
        voice = message.voice
        refs.append(
            _FileRef(
                voice.file_id, f"voice_{voice.file_unique_id}.ogg", "audio/ogg", voice.file_size
            )
        )
    return refs


def message_files(
    message: Message, bot: Bot, download_limit: int
) -> tuple[list[Attachment], list[TooLarge]]:
    """The message's files as attachments, and those over Telegram's download limit."""
    accepted: list[Attachment] = []
    refused: list[TooLarge] = []
    for ref in _refs(message):
        if ref.size is not None and ref.size > download_limit:
            refused.append(TooLarge(ref.name, ref.mime, ref.size, download_limit))
            continue
        read = _reader(bot, ref, download_limit)
        accepted.append(Attachment(ref.name, ref.mime, ref.size, read, ref=asdict(ref)))
    return accepted, refused


def reader_for(
    bot: Bot, ref: Mapping[str, Any], download_limit: int
) -> Callable[[], Awaitable[bytes]]:
    """The reader of a file queued by any replica, from the reference stored with it."""
    size = ref.get("size")
    file = _FileRef(
        file_id=str(ref["file_id"]),
        name=str(ref.get("name") or "file"),
        mime=str(ref["mime"]) if ref.get("mime") is not None else None,
        size=int(size) if size is not None else None,
    )
    return _reader(bot, file, download_limit)


def _reader(bot: Bot, ref: _FileRef, limit: int) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        if ref.size is not None and ref.size > limit:
            raise DownloadTooLarge(size=ref.size, limit=limit)
        try:
            file = await bot.get_file(ref.file_id)
        except BadRequest as exc:  # an unknown or expired file id: asking again will not help
            raise FileUnreadable(exc.message) from None
        if file.file_size is not None and file.file_size > limit:
            raise DownloadTooLarge(size=file.file_size, limit=limit)
        data = await file.download_as_bytearray()
        return bytes(data)

    return read


def _mentions(message: Message, username: str) -> bool:
    handle = f"@{username}".lower()
    for entities, text in (
        (message.entities, message.text),
        (message.caption_entities, message.caption),
    ):
        if not text:
            continue
        for entity in entities:
            if entity.type == MessageEntity.MENTION:
                piece = text.encode("utf-16-le")[
                    entity.offset * 2 : (entity.offset + entity.length) * 2
                ]
                if piece.decode("utf-16-le").lower() == handle:
                    return True
    return False


def addressed_text(message: Message, bot_id: int, username: str) -> str | None:
    """The text meant for the bot, or None when a group message is not for it.

    In private chats everything is. In groups: a command (to no bot in particular, or to
    this one), a message mentioning the bot, or a reply to one of its messages. The
    mention and a `@bot` command suffix are removed.
    """
    text = message.text or message.caption or ""
    handle = f"@{username}"
    if text.startswith("/"):
        command, _, rest = text.partition(" ")
        name, _, target = command.partition("@")
        if target and target.lower() != username.lower():
            return None
        text = f"{name} {rest}".strip() if rest else name
        return text
    if message.chat.type == "private":
        return text
    replied = message.reply_to_message
    to_bot = (
        replied is not None and replied.from_user is not None and replied.from_user.id == bot_id
    )
    if not to_bot and not _mentions(message, username):
        return None
    cleaned = text.replace(handle, "").replace(handle.lower(), "")
    return " ".join(cleaned.split())


def bound_callback(query: CallbackQuery, chat_id: int, bot_id: int) -> bool:
    """True when the press carries data the bot itself put on that message in that chat.

    Telegram vouches for the chat and the message of a press, not for its data: a modified
    client can send any data with any of its messages. Only a button of the bot's own
    message, as Telegram shows it with the press, acts.
    """
    message = query.message
    if not isinstance(message, Message) or message.chat.id != chat_id:
        return False
    if message.from_user is None or message.from_user.id != bot_id:
        return False
    markup = message.reply_markup
    if markup is None or not query.data:
        return False
    return any(
        button.callback_data == query.data for row in markup.inline_keyboard for button in row
    )


def to_inbound(
    update: Update,
    *,
    text: str,
    attachments: tuple[Attachment, ...] = (),
) -> Inbound:
    """An inbound message from a message or a button press update."""
    chat = update.effective_chat
    user = update.effective_user
    if chat is None:
        raise ValueError("an update without a chat has no message to hand in")
    query = update.callback_query
    return Inbound(
        chat_id=chat.id,
        user_id=user.id if user is not None else chat.id,
        text=text,
        language_code=user.language_code if user is not None else None,
        attachments=attachments,
        update_id=update.update_id,
        callback_data=query.data if query is not None else None,
        is_group=chat.type in ("group", "supergroup"),
    )


@dataclass
class _Album:
    messages: list[tuple[Update, Message]] = field(default_factory=list)
    last_added: float = field(default_factory=time.monotonic)


class AlbumCollector:
    """Photos sent together arrive as separate updates sharing `media_group_id`.

    The first update of a group waits until no sibling has arrived for `wait_s`, then
    carries the whole group; the others only join it.
    """

    def __init__(self, wait_s: float, max_wait_s: float = 10.0) -> None:
        self.wait_s = wait_s
        self.max_wait_s = max_wait_s
        self._albums: dict[tuple[int, str], _Album] = {}

    def join(self, chat_id: int, group_id: str, update: Update, message: Message) -> bool:
        """Add a message; True when the caller is the first and should `gather` the group."""
        key = (chat_id, group_id)
        album = self._albums.get(key)
        if album is not None:
            album.messages.append((update, message))
            album.last_added = time.monotonic()
            return False
        self._albums[key] = _Album(messages=[(update, message)])
        return True

    async def gather(self, chat_id: int, group_id: str) -> list[tuple[Update, Message]]:
        key = (chat_id, group_id)
        album = self._albums[key]
        started = time.monotonic()
        while True:
            quiet_until = album.last_added + self.wait_s
            now = time.monotonic()
            if now >= quiet_until or now - started >= self.max_wait_s:
                break
            await asyncio.sleep(quiet_until - now)
        del self._albums[key]
        return sorted(album.messages, key=lambda pair: pair[1].message_id)
