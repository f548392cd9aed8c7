"""One error tree for the backend, mapped once at the edge from HTTP statuses and envelopes.

Every error carries what the bot needs to word a reply; none carries a token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backend.config import ACCEPTED_EXTENSIONS
from backend.redaction import redact

_MAX_MESSAGE = 300


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Server-supplied text fit for an exception: secrets masked, length capped."""
    text = redact(text, secrets)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


class NemoError(Exception):
    """Base of every backend failure; `code` is the envelope code, `status` the HTTP status."""

    def __init__(self, message: str = "", *, code: int | None = None, status: int | None = None):
        super().__init__(message or type(self).__name__)
        self.message = message or type(self).__name__
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code}, status={self.status})"


class TokenExpired(NemoError):
    """The bearer token is expired or invalid (1001/1010/1011, HTTP 401)."""


class SessionNotFound(NemoError):
    """The agent session is gone (1002): start a new one and tell the user."""


class OutOfCredits(NemoError):
    """No credits left (2001); anonymous users get a registration link."""

    def __init__(
        self,
        message: str = "out of credits",
        *,
        anonymous: bool = False,
        link: str | None = None,
        code: int | None = 2001,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.anonymous = anonymous
        self.link = link


class UnsupportedFile(NemoError):
    """File type not accepted (4001, or refused before sending)."""

    def __init__(
        self,
        message: str = "unsupported file type",
        *,
        accepted: tuple[str, ...] = (),
        code: int | None = 4001,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.accepted = accepted


class FileTooLarge(NemoError):
    """File bigger than allowed (4002, or refused before sending)."""

    def __init__(
        self,
        message: str = "file too large",
        *,
        size: int | None = None,
        limit: int | None = None,
        code: int | None = 4002,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.size = size
        self.limit = limit


class MissingClientId(NemoError):
    """The anonymous-token call lacked an X-Client-Id (HTTP 400)."""


class ExportBlocked(NemoError):
    """Export refused by plan or missing attribution (HTTP 402); not a credits problem."""


class RateLimited(NemoError):
    """HTTP 429, still refused after the single retry."""

    def __init__(
        self,
        message: str = "rate limited",
        *,
        retry_after: float | None = None,
        code: int | None = None,
        status: int | None = 429,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class BackendUnavailable(NemoError):
    """Network failure or 5xx: nothing the user did wrong; try later."""


class StreamBroken(BackendUnavailable):
    """The chat stream broke after the message may have reached the agent: never re-send it."""


class StreamTimeout(StreamBroken):
    """The chat stream exceeded its total time budget."""


class ProtocolError(NemoError):
    """An answer that could not be understood (not JSON, missing fields)."""


class RenderFailed(NemoError):
    """The render service refused or failed a job."""

    def __init__(
        self,
        message: str = "render failed",
        *,
        code: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)


_TOKEN_CODES = frozenset({1001, 1010, 1011})


def _int_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("message", "error_message", "detail", "msg", "error"):
            inner = value.get(key)
            if isinstance(inner, str):
                return inner
    return ""


def _first_str(data: Any, keys: tuple[str, ...]) -> str | None:
    if isinstance(data, Mapping):
        for key in keys:
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def map_error(
    status: int,
    body: Any,
    *,
    endpoint: str = "",
    anonymous: bool = False,
    credits_link: str | None = None,
    retry_after: float | None = None,
    secrets: Iterable[str | None] = (),
) -> NemoError | None:
    """The error an answer stands for, or None when it is a success.

    `body` is the parsed JSON (any shape) or None for a bodiless or unparseable reply.
    """
    code: int | None = None
    message = ""
    data: Any = None
    failed_envelope = False
    if isinstance(body, Mapping):
        code = _int_code(body.get("code"))
        message = _text(body.get("message")) or _text(body.get("msg"))
        message = message or _text(body.get("error")) or _text(body.get("detail"))
        data = body.get("data")
        detail_only = body.get("detail") is not None and status >= 400 and code is None
        failed_envelope = body.get("success") is False or detail_only
    message = scrub(message, secrets)
    ok_status = 200 <= status < 300
    if ok_status and (code is None or code == 0) and not failed_envelope:
        return None

    if code in _TOKEN_CODES:
        return TokenExpired(message or "token expired or invalid", code=code, status=status)
    if code == 1002:
        return SessionNotFound(message or "session not found", code=code, status=status)
    if code == 2001:
        link = _first_str(data, ("register_url", "registration_url", "bind_url", "link", "url"))
        return OutOfCredits(
            message or "out of credits",
            anonymous=anonymous,
            link=link or (credits_link if anonymous else None),
            code=code,
            status=status,
        )
    if code == 4001:
        return UnsupportedFile(
            message or "unsupported file type", accepted=ACCEPTED_EXTENSIONS, status=status
        )
    if code == 4002:
        size = _int_code(data.get("size")) if isinstance(data, Mapping) else None
        limit = _int_code(data.get("limit")) if isinstance(data, Mapping) else None
        return FileTooLarge(message or "file too large", size=size, limit=limit, status=status)

    if status == 401:
        return TokenExpired(message or "token expired or invalid", code=code, status=status)
    if status == 400 and endpoint == "anonymous-token":
        return MissingClientId(message or "missing X-Client-Id", code=code, status=status)
    if status == 402:
        return ExportBlocked(message or "export blocked", code=code, status=status)
    if status == 404 and "session" in message.lower():
        return SessionNotFound(message, code=code, status=status)
    if status == 429:
        return RateLimited(
            message or "rate limited", retry_after=retry_after, code=code, status=status
        )
    if status >= 500:
        return BackendUnavailable(message or f"backend error {status}", code=code, status=status)
    if ok_status and failed_envelope and endpoint.startswith("render"):
        return RenderFailed(message or "render refused", code=code, status=status)
    return NemoError(message or f"request refused ({status})", code=code, status=status)
