"""What the bot does with each message, whatever front end delivered it.

A front end calls `handle()` for every message as it arrives, concurrently (one task per
message). Control messages (/cancel, /credits, /status, /help, /lang, status and credits
buttons) are answered at once by `Actions`. Other messages go into the chat's inbox in the
store, shared by every replica: `ChatQueue` in the process holding the chat's lock runs
them one at a time, in order, and a message that has to wait is answered at once. A
process that dies leaves its lock to expire and its chats' messages and exports in the
store, where a periodic sweep in every process finds them. Messages carrying an
`update_id` are handled once, however often they arrive.

`Conversation` only wires the parts: each receives what it uses in its constructor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection

from backend import NemoClient
from bot.conversation.actions import Actions
from bot.conversation.errors import ErrorReplies, apology, fallback_lang, log_failure
from bot.conversation.export import Exports
from bot.conversation.files import Uploads
from bot.conversation.queue import MAX_QUEUED, ChatQueue
from bot.conversation.session import Sessions
from bot.conversation.state import ChatStates, new_ref, safe_send
from bot.conversation.stream import AgentChat
from bot.conversation.text import command_of, is_cancel_word
from bot.io import Inbound, Outbox, ReaderFor, SendText, button_action
from bot.ops.logs import log_context
from bot.ops.metrics import Metrics
from bot.settings import Settings
from bot.store import ChatStore, StoreUnavailable
from router import Intent, classify

__all__ = ["MAX_QUEUED", "Conversation"]

log = logging.getLogger("bot.conversation")

_CONTROL_COMMANDS = frozenset({"cancel", "credits", "status", "help", "lang"})


class Conversation:
    """The bot's behaviour, independent of Telegram; see the module docstring."""

    def __init__(
        self,
        client: NemoClient,
        store: ChatStore,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        web_base: str = "https://nemovideo.com",
        reader_for: ReaderFor | None = None,
        front: str = "telegram",
    ) -> None:
        """`front` names the front end (telegram, terminal) whose ways the replies word."""
        metrics = metrics or Metrics()
        operator = settings.nemo_token is not None
        # Stored as the value of the chat locks it holds: tells operators which process.
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        states = ChatStates(store)
        sessions = Sessions(client, states, operator=operator)
        errors = ErrorReplies(sessions, metrics, operator=operator, web_base=web_base)
        exports = Exports(sessions, states, settings, metrics)
        agent = AgentChat(
            sessions, states, exports, metrics, quiet_s=settings.quiet_notice_s, front=front
        )
        uploads = Uploads(sessions, settings.upload_limits())
        self._actions = Actions(states, sessions, exports, uploads, agent, errors, metrics, owner)
        self._queue = ChatQueue(states, self._actions, exports, errors, settings, owner, reader_for)
        self._lock_ttl_s = settings.lock_ttl_s

    # --- the front end's entry points ----------------------------------------------------

    def is_control(self, msg: Inbound) -> bool:
        """Messages answered at once, bypassing the per-chat queue: /cancel, /credits,
        /status, /help, /lang, the same asked in words, and the Status and Credits buttons
        (Export and New project start a job, which waits its turn)."""
        if msg.callback_data is not None:
            return button_action(msg.callback_data) in ("status", "credits")
        if msg.attachments:
            return False
        if is_cancel_word(msg.text):
            return True
        cmd = command_of(msg.text)
        if cmd is not None:
            return cmd[0] in _CONTROL_COMMANDS
        text = msg.text.strip()
        if not text:
            return False
        decision = classify(text)
        return decision.intent in (Intent.CREDITS, Intent.STATUS)

    async def handle(
        self,
        msg: Inbound,
        out: Outbox,
        *,
        accepted: Callable[[], None] | None = None,
        unstored: Callable[[], None] | None = None,
    ) -> None:
        """Answer one message. Never raises.

        Returns when its work is done here, or when it waits in the chat's shared inbox
        for the process that holds the chat (which answers it through its own front end).
        Messages of one chat are queued in the order `handle` was called. `accepted` is
        called as soon as the message is in the chat's inbox in the store, where it
        outlives this process, or refused for good; a front end acknowledges its delivery
        then. `unstored` is called instead when the store could not take the message: the
        front end has it delivered again (a webhook answers 503), so the user is not told
        of the failure. Logs one line per message (its intent, outcome and duration), but a
        flood's refusals one line per burst."""
        started = time.perf_counter()
        with log_context(chat_id=msg.chat_id, update_id=msg.update_id):
            outcome = await self._handle(msg, out, accepted, unstored)
            if outcome == "refused":
                return  # a flood is logged once per burst, not once per message
            log.info(
                "message handled",
                extra={
                    "intent": intent_of(msg),
                    "outcome": outcome,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    async def _handle(
        self,
        msg: Inbound,
        out: Outbox,
        accepted: Callable[[], None] | None,
        unstored: Callable[[], None] | None,
    ) -> str:
        if self._queue.closing:
            return "shutting_down"
        try:
            if msg.callback_data is not None and button_action(msg.callback_data) is None:
                return "unknown_button"
            if self.is_control(msg):
                if await self._queue.seen(msg):
                    return "duplicate"
                return await self._actions.control(msg, out)
            if not msg.text.strip() and not msg.attachments and msg.callback_data is None:
                return "empty"
            stored = False

            def on_stored() -> None:
                nonlocal stored
                stored = True
                if accepted is not None:
                    accepted()

            try:
                outcome = await self._queue.submit(msg, out, on_stored)
            except StoreUnavailable:
                if stored or unstored is None:
                    raise
                log.warning("message not stored, left to be delivered again")
                unstored()
                return "not_stored"
            return outcome
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ref = new_ref()
            log_failure("unhandled error", ref, exc, msg.chat_id)
            await safe_send(out, SendText(apology(exc, fallback_lang(msg), ref)))
            return "error"

    async def resume_pending(
        self,
        outbox_for: Callable[[int], Outbox],
        *,
        only: Collection[int] | None = None,
        reader_for: ReaderFor | None = None,
    ) -> None:
        """At start-up: take on the work left in the store (exports in flight, queued
        messages) of chats no living process holds, and keep looking for such work every
        SWEEP_INTERVAL_S, so a replica that dies has its chats picked up by the others.

        `outbox_for` answers the messages and exports of chats whose front end call is
        gone; `only` limits all this to some chats; `reader_for` rebuilds stored files.
        Returns at once; the work runs in the background (see `wait_idle`)."""
        self._queue.attach(outbox_for, only=only, reader_for=reader_for)
        # A lock left by a dead process lapses within its TTL: wait that long for it here.
        await self._queue.sweep(patience=self._lock_ttl_s + 0.5)
        self._queue.start_sweeper()

    async def wait_idle(self) -> None:
        """Wait until no job of any chat is queued or running in this process."""
        await self._queue.wait_idle()

    async def aclose(self) -> None:
        """Stop every job without cancelling renders: pending exports and queued messages
        stay in the store for the next process."""
        await self._queue.close()


def intent_of(msg: Inbound) -> str:
    """What a message asks for, as one word for the log line."""
    if msg.callback_data is not None:
        return f"button:{button_action(msg.callback_data) or 'unknown'}"
    if msg.attachments:
        return "files"
    command = command_of(msg.text)
    if command is not None:
        return f"/{command[0]}"
    if is_cancel_word(msg.text):
        return "/cancel"
    return classify(msg.text).intent.value if msg.text.strip() else "empty"
