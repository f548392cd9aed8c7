"""A flood answered once: the messages a full inbox refuses get one notice per burst, kept
up to date with how many were not taken, and the log one line when the burst is over."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from bot.conversation.errors import fallback_lang
from bot.conversation.state import new_ref, safe_send
from bot.io import Inbound, Outbox, Progress
from bot.texts import t

__all__ = ["FloodNotices"]

log = logging.getLogger("bot.conversation")


@dataclass
class _Burst:
    ref: str
    out: Outbox
    lang: str
    refused: int = 0
    last_at: float = 0.0
    closer: asyncio.Task[None] | None = None


class FloodNotices:
    """A burst lasts until no message was refused for `quiet_s`; its notice is one status
    message whose count grows (edits superseded by newer ones are never sent)."""

    def __init__(self, waiting: int, quiet_s: float = 5.0) -> None:
        self._waiting = waiting
        self._quiet_s = quiet_s
        self._bursts: dict[int, _Burst] = {}

    async def refused(self, msg: Inbound, out: Outbox) -> None:
        burst = self._bursts.get(msg.chat_id)
        if burst is None:
            burst = _Burst(new_ref("flood"), out, fallback_lang(msg))
            self._bursts[msg.chat_id] = burst
            burst.closer = asyncio.create_task(self._end_when_quiet(msg.chat_id, burst))
        burst.refused += 1
        burst.last_at = time.monotonic()
        await safe_send(burst.out, Progress(burst.ref, self._text(burst)))

    def close(self) -> None:
        for burst in self._bursts.values():
            if burst.closer is not None:
                burst.closer.cancel()
        self._bursts.clear()

    def _text(self, burst: _Burst) -> str:
        return t("queue_flood", burst.lang, count=self._waiting, dropped=burst.refused)

    async def _end_when_quiet(self, chat_id: int, burst: _Burst) -> None:
        # The end moves with each refusal: sleep until the latest quiet deadline.
        while (wait := burst.last_at + self._quiet_s - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self._bursts.pop(chat_id, None)
        log.info("flood refused", extra={"chat_id": chat_id, "refused": burst.refused})
        await safe_send(burst.out, Progress(burst.ref, self._text(burst), done=True))
