"""Log lines PTB writes about what the bot handles itself.

With `AIORateLimiter(max_retries=0)` every flood error goes back to the outbox, which
waits it out (or drops an in-between edit) and logs one line at INFO; PTB logs the same
event at ERROR with a traceback first. Those are false alerts: they are filtered out.
"""

from __future__ import annotations

import logging

from telegram.error import RetryAfter

__all__ = ["HandledFloods", "quiet_handled_floods"]

RATE_LIMITER_LOGGER = "telegram.ext.AIORateLimiter"


class HandledFloods(logging.Filter):
    """Drops the rate limiter's record of a flood error it hands back to the caller."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, RetryAfter)


def quiet_handled_floods() -> None:
    """Install the filter once on the rate limiter's logger."""
    logger = logging.getLogger(RATE_LIMITER_LOGGER)
    if not any(isinstance(f, HandledFloods) for f in logger.filters):
        logger.addFilter(HandledFloods())
