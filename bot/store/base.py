"""What every chat store keeps and promises: a chat's state, its pending exports, the
shared inbox's hand-over record (`Taken`), the `ChatStore` contract, and the one error a
store raises when it cannot be reached."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "ChatState",
    "ChatStore",
    "PendingExport",
    "StoreUnavailable",
    "Taken",
    "decode_state",
    "encode_state",
    "token_ttl",
]

log = logging.getLogger("bot.store")


@dataclass
class PendingExport:
    """An export in flight, with enough to resume polling after a restart."""

    render_id: str
    started_at: float
    lang: str = "en"
    progress_ref: str | None = None


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


@dataclass(frozen=True)
class Taken:
    """What the lock holder got from the chat's inbox.

    `held` is False when the lock is no longer ours (nothing was taken). `leftover` marks a
    message a previous holder took and never finished: it died, or stopped, mid-job.
    """

    held: bool
    item: str | None = None
    leftover: bool = False


class ChatStore(Protocol):
    async def load(self, chat_id: int) -> ChatState: ...
    async def save(self, state: ChatState) -> None: ...
    async def delete(self, chat_id: int) -> None: ...
    async def try_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool: ...
    async def renew_lock(self, chat_id: int, owner: str, ttl_s: float) -> bool: ...
    async def unlock(self, chat_id: int, owner: str) -> None: ...
    async def first_seen(
        self, update_id: int, ttl_s: float = 86400, scope: str = "update"
    ) -> bool: ...
    async def chats_with_pending(self) -> list[int]: ...
    async def enqueue(self, chat_id: int, item: str, limit: int) -> int: ...
    async def take_queued(self, chat_id: int, owner: str, ttl_s: float) -> Taken: ...
    async def finish_queued(self, chat_id: int) -> None: ...
    async def queue_length(self, chat_id: int) -> int: ...
    async def unindex_if_empty(self, chat_id: int) -> int: ...
    async def chats_with_work(self) -> list[int]: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


def encode_state(state: ChatState) -> str:
    """The chat's state as stored, without the token (kept under its own key and TTL)."""
    body = asdict(state)
    del body["token"], body["token_expires_at"]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def decode_state(chat_id: int, raw: str | bytes | None, token_raw: str | bytes | None) -> ChatState:
    """Validate what was read; a corrupted or foreign value is logged and treated as absent."""
    state = ChatState(chat_id=chat_id)
    if raw is not None:
        try:
            body = json.loads(raw)
            pending = [PendingExport(**p) for p in body.get("pending") or []]
            draft = body.get("last_draft")
            state = ChatState(
                chat_id=chat_id,
                client_id=_opt_str(body.get("client_id")),
                session_id=_opt_str(body.get("session_id")),
                task_id=_opt_str(body.get("task_id")),
                lang=_opt_str(body.get("lang")),
                lang_locked=bool(body.get("lang_locked", False)),
                pending=pending,
                last_draft=draft if isinstance(draft, dict) else None,
            )
        except (ValueError, TypeError, AttributeError):
            log.warning("chat state unreadable, starting afresh", extra={"chat_id": chat_id})
    if token_raw is not None:
        try:
            tok = json.loads(token_raw)
            state.token = _opt_str(tok["token"])
            expires = tok.get("expires_at")
            state.token_expires_at = float(expires) if expires is not None else None
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("chat token unreadable, ignoring it", extra={"chat_id": chat_id})
    return state


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def token_ttl(state: ChatState, idle_ttl_s: float, now: float) -> float | None:
    """Seconds the token key may live: until the token expires, at most as long as the chat."""
    if state.token is None:
        return None
    if state.token_expires_at is None:
        return idle_ttl_s
    return min(idle_ttl_s, state.token_expires_at - now)


class StoreUnavailable(Exception):
    """The store cannot be reached; nothing was read or written."""
