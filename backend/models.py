"""Typed values the client returns, and tolerant parsers for the service's answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, BinaryIO

from backend.drafts import canvas_of
from backend.errors import ProtocolError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A bearer token and where it came from; its repr shows neither the token nor the
    client id (the service trades a client id for a fresh token of the same user)."""

    token: str
    client_id: str | None
    expires_at: datetime | None
    anonymous: bool
    user_id: str | None = None

    def expired(self, now: datetime | None = None, margin_s: float = 60) -> bool:
        """True when the token is past (or within `margin_s` of) its expiry."""
        if self.expires_at is None:
            return False
        now = now or datetime.now(UTC)
        expires = self.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return (expires - now).total_seconds() <= margin_s

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat() if self.expires_at else None
        return (
            f"Credentials(token=***, client_id=***, expires_at={expires!r}, "
            f"anonymous={self.anonymous}, user_id={self.user_id!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Session:
    task_id: str
    session_id: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Credits:
    available: int
    frozen: int
    total: int


@dataclass(frozen=True, slots=True)
class ProjectState:
    """The session's draft (always a dict, possibly empty) and the whole answer."""

    draft: dict[str, Any]
    raw: dict[str, Any]
    canvas: tuple[int, int] | None = None  # (width, height) in pixels, when the state says


@dataclass(frozen=True)
class UploadFile:
    """One file to send: bytes or a readable binary file object of `size` bytes."""

    name: str
    mime: str | None
    data: bytes | BinaryIO
    size: int


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    file_type: str
    cdn_url: str
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None


class RenderStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RenderStatus.COMPLETED, RenderStatus.FAILED, RenderStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class RenderJob:
    id: str
    status: RenderStatus
    progress: float
    url: str | None = None
    error: str | None = None


# --- parsers -----------------------------------------------------------------------------


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 (with `Z`) or epoch seconds/milliseconds; None when absent or odd."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _opt_int(value: Any) -> int | None:
    number = _opt_float(value)
    return int(number) if number is not None else None


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def require_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{what}: expected an object, got {type(data).__name__}")
    return data


def parse_session(data: Any) -> Session:
    body = require_mapping(data, "new session")
    session_id = _opt_str(body.get("session_id") or body.get("sessionId"))
    if not session_id:
        raise ProtocolError("new session: no session_id")
    task_id = _opt_str(body.get("task_id") or body.get("taskId")) or ""
    return Session(task_id=task_id, session_id=session_id, user_id=_opt_str(body.get("user_id")))


def parse_credits(data: Any) -> Credits:
    body = require_mapping(data, "credits")
    available = _opt_int(body.get("available"))
    if available is None:
        raise ProtocolError("credits: no available balance")
    frozen = _opt_int(body.get("frozen")) or 0
    total = _opt_int(body.get("total"))
    return Credits(available, frozen, total if total is not None else available + frozen)


def parse_state(data: Any) -> ProjectState:
    body = require_mapping(data, "state")
    state = body.get("state")
    if isinstance(state, str):
        state = _loads_or_none(state)
    draft: Any = state.get("draft") if isinstance(state, Mapping) else None
    if isinstance(draft, str):
        draft = _loads_or_none(draft)
    draft = dict(draft) if isinstance(draft, Mapping) else {}
    config = state.get("canvas_config") if isinstance(state, Mapping) else None
    return ProjectState(draft=draft, raw=dict(body), canvas=canvas_of(draft, config))


def _loads_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_uploaded(data: Any) -> list[UploadedFile]:
    items = data.get("files") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise ProtocolError("upload: no file list in the answer")
    out: list[UploadedFile] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        url = _opt_str(item.get("cdn_url") or item.get("url") or item.get("cdnUrl")) or ""
        out.append(
            UploadedFile(
                filename=_opt_str(item.get("filename") or item.get("name")) or "",
                file_type=_opt_str(item.get("file_type") or item.get("type")) or "",
                cdn_url=url,
                duration=_opt_float(item.get("duration")),
                width=_opt_int(item.get("width")),
                height=_opt_int(item.get("height")),
                size=_opt_int(item.get("size") or item.get("file_size")),
            )
        )
    return out


_STATUS_WORDS: dict[str, RenderStatus] = {
    "pending": RenderStatus.PENDING,
    "queued": RenderStatus.PENDING,
    "waiting": RenderStatus.PENDING,
    "created": RenderStatus.PENDING,
    "submitted": RenderStatus.PENDING,
    "processing": RenderStatus.PROCESSING,
    "rendering": RenderStatus.PROCESSING,
    "running": RenderStatus.PROCESSING,
    "in_progress": RenderStatus.PROCESSING,
    "started": RenderStatus.PROCESSING,
    "completed": RenderStatus.COMPLETED,
    "complete": RenderStatus.COMPLETED,
    "done": RenderStatus.COMPLETED,
    "success": RenderStatus.COMPLETED,
    "succeeded": RenderStatus.COMPLETED,
    "finished": RenderStatus.COMPLETED,
    "failed": RenderStatus.FAILED,
    "failure": RenderStatus.FAILED,
    "error": RenderStatus.FAILED,
    "cancelled": RenderStatus.CANCELLED,
    "canceled": RenderStatus.CANCELLED,
    "aborted": RenderStatus.CANCELLED,
}


def _render_body(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Shape A nests the job in `data`; shapes B and C put it at the top."""
    data = payload.get("data")
    if isinstance(data, Mapping) and ("status" in data or "id" in data or "outputUrl" in data):
        return data
    return payload


def _error_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        for key in ("message", "error", "detail", "reason"):
            inner = value.get(key)
            if isinstance(inner, str) and inner:
                return inner
        return json.dumps(value, ensure_ascii=False)[:300]
    return None


def parse_render(payload: Any, fallback_id: str = "") -> RenderJob:
    """A render job from any of the three documented answer shapes."""
    top = require_mapping(payload, "render")
    body = _render_body(top)
    raw_id = body.get("id") or body.get("taskId") or body.get("renderId") or body.get("task_id")
    job_id = _opt_str(raw_id) or fallback_id
    raw_status = body.get("status")
    if raw_status is None:
        raw_status = top.get("status")
    status_word = str(raw_status).strip().lower().replace("-", "_") if raw_status else "pending"
    status = _STATUS_WORDS.get(status_word)
    if status is None:
        log.warning("render: unknown status treated as processing", extra={"status": status_word})
        status = RenderStatus.PROCESSING

    outputs = (body.get("output"), top.get("output"))
    output = next((o for o in outputs if isinstance(o, Mapping)), {})
    url = _opt_str(
        body.get("outputUrl")
        or body.get("output_url")
        or output.get("url")
        or body.get("url")
        or body.get("downloadUrl")
        or top.get("outputUrl")
    )

    progress = _opt_float(body.get("progress"))
    if progress is None:
        progress = 0.0
    elif isinstance(body.get("progress"), float) and 0 < progress <= 1:
        progress *= 100
    if status is RenderStatus.COMPLETED:
        progress = 100.0
    progress = max(0.0, min(100.0, progress))

    error = _error_text(body.get("error")) or _error_text(top.get("error"))
    if status is RenderStatus.FAILED and not error:
        error = "render failed"
    return RenderJob(id=job_id, status=status, progress=progress, url=url, error=error)
