"""When a refused call is sent again: once after a 429, once after a renewed token.

A 429 is retried after the wait the server asks for (`Retry-After`), or the configured
wait when it names none; a server asking for longer than `max_wait` is not waited for.
An expired anonymous token is renewed and the call sent once more. Both only ever for a
request the server refused at the door, so nothing is done twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from tenacity import AsyncRetrying, RetryCallState

from backend.errors import RateLimited, TokenExpired
from backend.models import Credentials

log = logging.getLogger(__name__)

Renew = Callable[[Credentials], Awaitable[None]]


@dataclass(eq=False)
class Recovery:
    """One call's retry budget, for tenacity: `attempts()` drives the loop.

    Each attempt reports the credentials it was sent with (`sent_with`), so an expiry is
    renewed for exactly the token that failed.
    """

    endpoint: str
    _: KW_ONLY
    rate_limit_wait: float
    max_wait: float
    renew: Renew | None = None
    sent_with: Credentials | None = field(default=None, init=False)
    _waited: bool = field(default=False, init=False)
    _renewed: bool = field(default=False, init=False)

    def attempts(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=self._worth_retrying,
            wait=self._wait,
            before_sleep=self._before_retry,
            reraise=True,
        )

    def wait_for(self, error: RateLimited) -> float:
        """What the server asked for, else the configured wait."""
        return error.retry_after if error.retry_after is not None else self.rate_limit_wait

    def _worth_retrying(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            return not self._waited and self.wait_for(error) <= self.max_wait
        if isinstance(error, TokenExpired):
            creds = self.sent_with
            return (
                self.renew is not None
                and not self._renewed
                and creds is not None
                and creds.anonymous
            )
        return False

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return self.wait_for(error) if isinstance(error, RateLimited) else 0.0

    async def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            self._waited = True
            log.info(
                "rate limited; waiting",
                extra={"endpoint": self.endpoint, "wait_s": self.wait_for(error)},
            )
        elif isinstance(error, TokenExpired) and self.renew and self.sent_with:
            self._renewed = True
            await self.renew(self.sent_with)
