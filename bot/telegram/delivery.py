"""A finished video must reach its user: failed uploads are tried again with growing pauses
for minutes before the caller falls back to a link.

Telegram's 5xx answers, timeouts on a slow upload and flood waits pass; a user who
blocked the bot may unblock it. Errors that cannot pass by waiting (a refused file, a file
over the size limit) end the retries at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram.error import BadRequest, ChatMigrated, InvalidToken, NetworkError, TelegramError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

__all__ = ["RetryPolicy", "deliver_with_retry", "passes_with_time"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Pauses double from `first_wait_s` up to `max_wait_s`; no new try after `give_up_s`."""

    give_up_s: float = 300.0
    first_wait_s: float = 2.0
    max_wait_s: float = 60.0


def passes_with_time(exc: BaseException) -> bool:
    """Whether trying the same upload again later may succeed."""
    if not isinstance(exc, TelegramError) or isinstance(
        exc, BadRequest | ChatMigrated | InvalidToken
    ):
        return False
    # 413: the same bytes stay too large, however long we wait.
    return not (isinstance(exc, NetworkError) and "too large" in exc.message.lower())


async def deliver_with_retry(
    attempt: Callable[[], Awaitable[bool]],
    policy: RetryPolicy,
    *,
    stopped: Callable[[], bool],
    chat_id: int,
) -> bool:
    """`attempt` until it returns (True: delivered, False: it cannot be sent this way), or
    False once its errors stop passing, time is up or `stopped()` (the bot shuts down)."""

    def halted(state: RetryCallState) -> bool:
        return stopped() or (state.seconds_since_start or 0.0) >= policy.give_up_s

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "video upload failed, trying again",
            extra={"chat_id": chat_id, "error": _describe(error), "retry_in_s": round(pause, 1)},
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(passes_with_time),
        wait=wait_exponential(multiplier=policy.first_wait_s, max=policy.max_wait_s),
        stop=halted,
        before_sleep=waiting,
        reraise=True,
    )

    async def once() -> bool:  # a coroutine function, as tenacity awaits only those
        return await attempt()

    try:
        return await retrying(once)
    except TelegramError as exc:
        log.warning(
            "video upload given up",
            extra={"chat_id": chat_id, "error": _describe(exc)},
        )
        return False


def _describe(error: BaseException | None) -> str:
    if isinstance(error, TelegramError):
        return f"{type(error).__name__}: {error.message}"
    return type(error).__name__ if error is not None else ""
