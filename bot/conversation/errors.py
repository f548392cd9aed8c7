"""Failures as replies: each backend error in its own friendly, translated words, anything
else as an apology with a reference that is also in the log."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from backend import ACCEPTED_EXTENSIONS
from backend import errors as api
from bot.conversation.session import Sessions
from bot.conversation.state import Turn, new_ref, safe_send
from bot.conversation.text import formats, pick_lang
from bot.io import Button, DownloadTooLarge, Inbound, SendText
from bot.ops.metrics import Metrics
from bot.store import StoreUnavailable
from bot.texts import fmt_size, t

__all__ = ["ErrorReplies", "apology", "fallback_lang", "log_failure", "render_failed_text"]

log = logging.getLogger("bot.conversation")


@dataclass(eq=False)
class ErrorReplies:
    """Error replies. A lost session is replaced through `sessions`; registration and top-up
    links fall back to `web_base`."""

    sessions: Sessions
    metrics: Metrics
    operator: bool
    web_base: str

    def __post_init__(self) -> None:
        self.web_base = self.web_base.rstrip("/")

    async def reply(self, turn: Turn, exc: BaseException) -> None:
        """Answer a failure; even a failure while answering ends in a logged apology."""
        turn.failed = True
        try:
            await self._explain(turn, exc)
        except Exception:
            ref = new_ref()
            log.exception("error reply failed ref=%s", ref, extra={"chat_id": turn.chat_id})
            await safe_send(turn.out, SendText(t("err_unknown", turn.lang, ref=ref)))

    async def _explain(self, turn: Turn, exc: BaseException) -> None:
        lang = turn.lang
        buttons: tuple[Button, ...] = ()
        kind = type(exc).__name__
        if isinstance(exc, api.TokenExpired):
            text = t("err_token_operator" if self.operator else "err_token", lang)
            log.warning("token refused", extra={"chat_id": turn.chat_id})
        elif isinstance(exc, api.OutOfCredits):
            link = exc.link or await self._claim_link(turn) or self.web_base
            if exc.anonymous and not self.operator:
                text = t("err_credits_anonymous", lang)
                buttons = (Button(t("btn_register", lang), url=link),)
            else:
                text = t("err_credits_registered", lang)
                buttons = (Button(t("btn_topup", lang), url=exc.link or self.web_base),)
            text = f"{text}\n{buttons[0].url}"
        elif isinstance(exc, api.UnsupportedFile):
            text = t("err_unsupported", lang, formats=formats(exc.accepted or ACCEPTED_EXTENSIONS))
        elif isinstance(exc, api.FileTooLarge | DownloadTooLarge):
            text = t("err_too_large", lang, size=fmt_size(exc.size), limit=fmt_size(exc.limit))
        elif isinstance(exc, api.ExportBlocked):
            text = t("err_export_blocked", lang)
        elif isinstance(exc, api.RateLimited):
            seconds = round(exc.retry_after) if exc.retry_after else 30
            text = t("err_rate_limited", lang, seconds=seconds)
        elif isinstance(exc, api.StreamBroken | api.BackendUnavailable):
            text = t("err_unavailable", lang)
            log.warning("backend unavailable: %s", kind, extra={"chat_id": turn.chat_id})
        elif isinstance(exc, api.RenderFailed):
            text = render_failed_text(exc.message, lang)
        elif isinstance(exc, api.SessionNotFound):
            try:
                await self.sessions.replace(turn)
                text = t("session_restarted", lang)
            except Exception as again:
                await self.reply(turn, again)
                return
        elif isinstance(exc, api.ProtocolError):
            ref = new_ref()
            log.error(
                "backend answer not understood ref=%s: %s",
                ref,
                exc.message[:200],
                extra={"chat_id": turn.chat_id},
            )
            text = t("err_protocol", lang, ref=ref)
        else:
            ref = new_ref()
            if isinstance(exc, api.MissingClientId | api.NemoError):
                log.error(
                    "backend refused ref=%s: %s %s",
                    ref,
                    kind,
                    exc.message[:200],
                    extra={"chat_id": turn.chat_id},
                )
            else:
                log_failure("unhandled error", ref, exc, turn.chat_id)
            text = apology(exc, lang, ref)
            kind = "store" if isinstance(exc, StoreUnavailable) else "unknown"
        self.metrics.errors.labels(kind).inc()
        await safe_send(turn.out, SendText(text, buttons=buttons))

    async def _claim_link(self, turn: Turn) -> str | None:
        """A browser link that keeps the anonymous user's project when they register."""
        state = turn.state
        if state.task_id is None or state.session_id is None or turn.api is None:
            return None
        try:
            return await turn.api.claim_link(state.task_id, state.session_id)
        except api.NemoError as exc:
            log.warning("claim link unavailable: %s", type(exc).__name__)
            return None


def log_failure(what: str, ref: str, exc: BaseException, chat_id: int | None = None) -> None:
    """The store out of reach is an outage the replies already word: one WARNING line.
    Anything else nobody planned for is an ERROR with its traceback."""
    extra = {} if chat_id is None else {"chat_id": chat_id}
    if isinstance(exc, StoreUnavailable):
        log.warning("%s ref=%s: store unavailable (%s)", what, ref, exc, extra=extra)
    else:
        log.error("%s ref=%s", what, ref, exc_info=(type(exc), exc, exc.__traceback__), extra=extra)


def apology(exc: BaseException, lang: str, ref: str) -> str:
    """The reply to a failure nobody planned for; the store being down has its own words."""
    return t("err_store" if isinstance(exc, StoreUnavailable) else "err_unknown", lang, ref=ref)


def fallback_lang(msg: Inbound | None) -> str:
    """The language to apologise in when the chat's state cannot be read."""
    if msg is None:
        return "en"
    return pick_lang(stored=None, locked=False, language_code=msg.language_code, text=msg.text)


# What the render service's plain-text reasons mean, in the user's words. Its own text
# (English, often with server paths) is never shown: unknown reasons get no detail.
_RENDER_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"time ?out|timed out|deadline", re.I), "reason_timeout"),
    (re.compile(r"out of memory|\boom\b|memory", re.I), "reason_memory"),
    (re.compile(r"unsupported|codec|decod|format", re.I), "reason_format"),
    (
        re.compile(r"not found|no such file|enoent|missing|\b404\b|download|fetch", re.I),
        "reason_missing",
    ),
    (re.compile(r"crash|killed|worker|exit(ed)? code|segfault|signal", re.I), "reason_crash"),
)


def render_failed_text(message: str | None, lang: str) -> str:
    """A failed render in the user's words, with the reason when the service's is known."""
    detail = ""
    for pattern, key in _RENDER_REASONS:
        if message and pattern.search(message):
            reason = t(key, lang)
            detail = f" ({reason})" if lang == "en" else f"（{reason}）"
            break
    return t("render_failed", lang, detail=detail)
