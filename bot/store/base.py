"""What every chat store keeps and promises: a chat's state, its pending exports, the
shared inbox's hand-over records (`Taken`, `Enqueued`), the `ChatStore` contract, and the
one error a store raises when it cannot be reached."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "SEEN_TTL_S",
    "ChatState",
    "ChatStore",
    "Enqueued",
    "Lease",
    "PendingExport",
    "StoreUnavailable",
    "Taken",
    "decode_legacy",
    "decode_pending",
    "decode_state",
    "encode_draft",
    "encode_pending",
    "encode_token",
    "encode_video",
    "token_ttl",
]

log = logging.getLogger("bot.store")

# How long a queued update's id is remembered, so a second delivery is not run again.
SEEN_TTL_S = 86400.0


@dataclass
class PendingExport:
    """An export in flight, with enough to resume polling after a restart."""

    render_id: str
    started_at: float
    lang: str = "en"
    progress_ref: str | None = None
    draft_key: str | None = None  # the version of the project rendered
    rounds: int = 0  # delivery rounds that reached nobody


@dataclass
class ChatState:
    chat_id: int
    token: str | None = field(default=None, repr=False)
    token_expires_at: float | None = None
    client_id: str | None = field(default=None, repr=False)  # a credential too
    session_id: str | None = None
    task_id: str | None = None
    lang: str | None = None
    lang_locked: bool = False
    pending: list[PendingExport] = field(default_factory=list)
    last_draft: dict[str, Any] | None = None
    # The last video delivered: {"url", "draft": the project version it shows, "offered"}.
    last_video: dict[str, str] | None = None


@dataclass(frozen=True)
class Taken:
    """What the lock holder got from the chat's inbox.

    `held` is False when the lock is no longer ours (nothing was taken). `leftover` marks a
    message a previous holder took and never finished: it died, or stopped, mid-job; `sent`
    says that holder may already have handed it to the backend (see `mark_sent`).
    """

    held: bool
    item: str | None = None
    leftover: bool = False
    sent: bool = False


@dataclass(frozen=True)
class Enqueued:
    """What `enqueue` did: the inbox's `length` with the message in it (0: the inbox was
    full and the message refused), or nothing, for an update queued before."""

    length: int = 0
    duplicate: bool = False


@dataclass(frozen=True)
class Lease:
    """Send slots granted from a budget shared by processes: `granted` (0 when the window
    is full, and then `wait_s` until its oldest slot frees)."""

    granted: int
    wait_s: float = 0.0


class ChatStore(Protocol):
    """A chat's state is written part by part, each write atomic on its own, so no write
    (from this process or another) can undo another's."""

    async def load(self, chat_id: int) -> ChatState: ...
    async def claim_client_id(self, chat_id: int, client_id: str) -> str: ...
    async def set_token(
        self, chat_id: int, token: str, expires_at: float | None, client_id: str | None
    ) -> None: ...
    async def set_session(
        self, chat_id: int, session_id: str, task_id: str | None, lang: str | None = None
    ) -> None: ...
    async def set_lang(self, chat_id: int, lang: str, locked: bool | None) -> None: ...
    async def set_draft(self, chat_id: int, draft: Mapping[str, Any] | None) -> None: ...
    async def set_last_video(self, chat_id: int, video: Mapping[str, str]) -> None: ...
    async def add_pending(self, chat_id: int, pending: PendingExport) -> None: ...
    async def claim_pending(self, chat_id: int, render_id: str) -> bool: ...
    async def delete(self, chat_id: int) -> None: ...
    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool: ...
    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool: ...
    async def lock_holder(self, chat_id: int) -> str | None: ...
    async def unlock(self, chat_id: int, owner: str) -> None: ...
    async def first_seen(
        self, update_id: int, ttl_s: float = 86400, scope: str = "update"
    ) -> bool: ...
    async def enqueue(
        self, chat_id: int, item: str, limit: int, update_id: int | None = None
    ) -> Enqueued: ...
    async def take_queued(self, chat_id: int, owner: str, ttl_s: float) -> Taken: ...
    async def mark_sent(self, chat_id: int, owner: str) -> bool: ...
    async def finish_queued(self, chat_id: int, owner: str) -> bool: ...
    async def queue_length(self, chat_id: int) -> int: ...
    async def unindex_if_empty(self, chat_id: int) -> int: ...
    async def chats_with_work(self) -> list[int]: ...
    async def take_sends(self, want: int, per_window: int, window_s: float) -> Lease: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


def encode_pending(pending: PendingExport) -> str:
    return json.dumps(asdict(pending), ensure_ascii=False, separators=(",", ":"))


def decode_pending(chat_id: int, raw: str | bytes) -> PendingExport | None:
    try:
        body = json.loads(raw)
        return PendingExport(
            render_id=str(body["render_id"]),
            started_at=float(body["started_at"]),
            lang=str(body.get("lang") or "en"),
            progress_ref=_opt_str(body.get("progress_ref")),
            draft_key=_opt_str(body.get("draft_key")),
            rounds=int(body.get("rounds") or 0),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("pending export unreadable, ignoring it", extra={"chat_id": chat_id})
        return None


def encode_token(token: str, expires_at: float | None) -> str:
    return json.dumps({"token": token, "expires_at": expires_at})


def encode_video(video: Mapping[str, str]) -> str:
    return json.dumps(dict(video), ensure_ascii=False, separators=(",", ":"))


def encode_draft(draft: Mapping[str, Any]) -> str:
    return json.dumps(dict(draft), ensure_ascii=False, separators=(",", ":"))


def decode_state(
    chat_id: int,
    fields: Mapping[str, str],
    token_raw: str | bytes | None,
    draft_raw: str | bytes | None,
    pending: Iterable[str | bytes],
) -> ChatState:
    """Validate what was read; a corrupted or foreign part is logged and treated as absent,
    and the other parts are kept."""
    state = ChatState(
        chat_id=chat_id,
        client_id=fields.get("client_id") or None,
        session_id=fields.get("session_id") or None,
        task_id=fields.get("task_id") or None,
        lang=fields.get("lang") or None,
        lang_locked=fields.get("lang_locked") == "1",
    )
    video = fields.get("last_video")
    if video:
        try:
            found_video = json.loads(video)
            if isinstance(found_video, dict):
                state.last_video = {str(k): str(v) for k, v in found_video.items()}
        except ValueError:
            log.warning("chat's last video unreadable, ignoring it", extra={"chat_id": chat_id})
    if draft_raw is not None:
        try:
            draft = json.loads(draft_raw)
            state.last_draft = draft if isinstance(draft, dict) else None
        except ValueError:
            log.warning("chat draft unreadable, ignoring it", extra={"chat_id": chat_id})
    found = (decode_pending(chat_id, raw) for raw in pending)
    state.pending = sorted((p for p in found if p is not None), key=lambda p: p.started_at)
    if token_raw is not None:
        try:
            tok = json.loads(token_raw)
            state.token = _opt_str(tok["token"])
            expires = tok.get("expires_at")
            state.token_expires_at = float(expires) if expires is not None else None
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("chat token unreadable, ignoring it", extra={"chat_id": chat_id})
    return state


def decode_legacy(chat_id: int, raw: str | bytes) -> ChatState:
    """A chat stored whole, as one JSON value, by versions before the state was split into
    parts; what cannot be read is left out."""
    state = ChatState(chat_id=chat_id)
    try:
        body = json.loads(raw)
        state.client_id = _opt_str(body.get("client_id"))
        state.session_id = _opt_str(body.get("session_id"))
        state.task_id = _opt_str(body.get("task_id"))
        state.lang = _opt_str(body.get("lang"))
        state.lang_locked = bool(body.get("lang_locked", False))
        draft = body.get("last_draft")
        state.last_draft = draft if isinstance(draft, dict) else None
        found = (decode_pending(chat_id, json.dumps(p)) for p in body.get("pending") or [])
        state.pending = [p for p in found if p is not None]
    except (ValueError, TypeError, AttributeError):
        log.warning("earlier chat state unreadable, starting afresh", extra={"chat_id": chat_id})
        return ChatState(chat_id=chat_id)
    return state


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def token_ttl(expires_at: float | None, idle_ttl_s: float, now: float) -> float:
    """Seconds the token key may live: until the token expires, at most as long as the chat."""
    if expires_at is None:
        return idle_ttl_s
    return min(idle_ttl_s, expires_at - now)


class StoreUnavailable(Exception):
    """The store cannot be reached; nothing was read or written."""
