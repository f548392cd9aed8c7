"""What a front end hands the conversation, and the operations it renders back.

The conversation never imports a front end: Telegram, the terminal chat and the tests
all speak these plain values, so the same logic runs behind each of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

__all__ = [
    "BUTTON_ACTIONS",
    "Attachment",
    "Button",
    "ChatAction",
    "DeliveryFailed",
    "DownloadTooLarge",
    "FileUnreadable",
    "Inbound",
    "Outbound",
    "Outbox",
    "Progress",
    "ReaderFor",
    "SendText",
    "SendVideo",
    "Stream",
    "button_action",
]


@dataclass(frozen=True)
class Attachment:
    """A file the user sent; its bytes are read only after the preflight check passed.

    `ref` is the front end's own JSON-safe reference to the file, so a message queued in the
    store can be run by another process: that process's front end rebuilds `read` from it.
    """

    name: str
    mime: str | None
    size: int | None
    read: Callable[[], Awaitable[bytes]]
    ref: Mapping[str, Any] | None = None


ReaderFor: TypeAlias = Callable[[Mapping[str, Any]], Callable[[], Awaitable[bytes]]]


class DownloadTooLarge(Exception):
    """An attachment's reader refused a file larger than its front end may fetch."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit


class FileUnreadable(Exception):
    """An attachment's front end does not have the file (gone, or never there)."""


@dataclass(frozen=True)
class Inbound:
    """One message (or one button press) from a user, free of any front end's types."""

    chat_id: int
    user_id: int
    text: str = ""
    language_code: str | None = None
    attachments: tuple[Attachment, ...] = ()
    update_id: int | None = None
    callback_data: str | None = None
    is_group: bool = False


@dataclass(frozen=True)
class Button:
    """An inline button: `data` goes back as `Inbound.callback_data`, `url` opens a page."""

    label: str
    data: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class SendText:
    """A new message. `timeline` is the project's draft when the text describes it: front
    ends that can draw may show it as a picture too, worded in `lang`."""

    text: str
    buttons: tuple[Button, ...] = ()
    markdown: bool = False
    timeline: Mapping[str, Any] | None = field(default=None, hash=False)
    lang: str | None = None


@dataclass(frozen=True)
class Stream:
    """One growing message: the first op with a `ref` creates it, later ones edit it.

    Front ends may skip intermediate edits to respect rate limits; the one with
    `final=True` must always be delivered. `literal` holds the user's own words the text
    quotes: front ends that format the text show them as typed, never as formatting.
    """

    ref: str
    text: str
    final: bool = False
    buttons: tuple[Button, ...] = ()
    literal: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """One status message, created by the first op with a `ref` and edited by later ones.

    A `fleeting` line is worth showing only if it lasts: a front end may hold its first
    text back a moment, and one done before it was shown shows nothing at all."""

    ref: str
    text: str
    done: bool = False
    fleeting: bool = False


@dataclass(frozen=True)
class SendVideo:
    """The finished video, by URL (the front end may download it) or as a local file.

    `duration`, `width` and `height` (seconds, pixels) and a `thumbnail` (URL or local
    JPEG/PNG) let players show a preview and stream it; `lang` words what the front end
    adds itself (a link's button). Sending one returns once the video, or a link to it,
    reached the user, and raises `DeliveryFailed` when neither did: the caller keeps the
    video to deliver again later.
    """

    url: str | None = None
    path: str | None = None
    caption: str = ""
    buttons: tuple[Button, ...] = ()
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    thumbnail: str | None = None
    lang: str | None = None


class DeliveryFailed(Exception):
    """Neither the video nor a link to it reached the user. It may later, unless
    `permanent` (the user blocked the bot, or the chat is gone)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ChatAction:
    """A transient "typing…" style indicator; front ends repeat or drop it as they like."""

    kind: Literal["typing", "upload_video"]


Outbound: TypeAlias = SendText | Stream | Progress | SendVideo | ChatAction


class Outbox(Protocol):
    """Where the conversation sends its operations; rendered by the front end in order.

    `send` never fails because a message could not be shown, with one exception: a
    `SendVideo` that could not be delivered raises `DeliveryFailed` (see there).
    """

    async def send(self, op: Outbound) -> None: ...


BUTTON_ACTIONS: tuple[str, ...] = ("export", "status", "credits", "new")


def button_action(data: str | None) -> str | None:
    """The action of a button's callback data (`a:<action>`), or None when it is not ours."""
    if not data or not data.startswith("a:"):
        return None
    action = data[2:]
    return action if action in BUTTON_ACTIONS else None
