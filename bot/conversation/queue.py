"""The per-chat queue: a chat's messages wait in its shared inbox in the store and are run one
at a time, in order, by the process holding the chat's lock; a periodic sweep takes on the
work a stopped process left behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from bot.conversation.actions import Actions
from bot.conversation.errors import ErrorReplies, apology, fallback_lang, log_failure
from bot.conversation.export import Exports
from bot.conversation.flood import FloodNotices
from bot.conversation.inbox import decode_item, encode_item
from bot.conversation.state import (
    ChatRuntime,
    ChatStates,
    Entry,
    FencedOutbox,
    Turn,
    lang_for,
    new_ref,
    safe_send,
)
from bot.conversation.text import command_of, snippet
from bot.io import (
    DeliveryFailed,
    Inbound,
    Outbound,
    Outbox,
    ReaderFor,
    SendText,
    SendVideo,
    button_action,
)
from bot.ops.logs import log_context
from bot.settings import Settings
from bot.store import PendingExport, Taken
from bot.texts import t
from router import Intent, classify

__all__ = ["MAX_QUEUED", "ChatQueue"]

log = logging.getLogger("bot.conversation")

# Messages one chat may have waiting in its inbox; more are refused, not lost silently,
# so a flood cannot grow the store without bound.
MAX_QUEUED = 20


@dataclass(eq=False)
class ChatQueue:
    """The per-chat queue, its workers and the sweep. Jobs are run by `actions` (and
    `exports`, for renders left behind); a job's failure is answered by `errors`. Chats
    whose front end call is gone are answered through the front end attached with
    `attach`."""

    states: ChatStates
    actions: Actions
    exports: Exports
    errors: ErrorReplies
    settings: Settings
    owner: str
    reader_for: ReaderFor | None = None
    _outbox_for: Callable[[int], Outbox] | None = field(default=None, init=False)
    _only: frozenset[int] | None = field(default=None, init=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False)
    _closing: bool = field(default=False, init=False)
    _floods: FloodNotices = field(default_factory=lambda: FloodNotices(MAX_QUEUED), init=False)

    @property
    def closing(self) -> bool:
        return self._closing

    def attach(
        self,
        outbox_for: Callable[[int], Outbox],
        *,
        only: Collection[int] | None,
        reader_for: ReaderFor | None,
    ) -> None:
        """The front end that answers chats whose own call is gone, and reads their files."""
        self._outbox_for = outbox_for
        self._only = frozenset(only) if only is not None else None
        if reader_for is not None:
            self.reader_for = reader_for

    async def wait_idle(self) -> None:
        """Wait until no job of any chat is queued or running in this process."""
        while True:
            workers = [rt.worker for rt in self.states.runtimes() if rt.worker is not None]
            if not workers:
                return
            await asyncio.wait(workers)

    async def close(self) -> None:
        """Stop every job at once; queued messages and pending exports stay in the store.

        Nothing more reaches the users from the jobs stopped here (their leases end now):
        whoever takes their chats over runs what was left, or says it was interrupted."""
        self._closing = True
        self._floods.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for rt in self.states.runtimes():
            rt.lease_until = 0.0
        workers = [rt.worker for rt in self.states.runtimes() if rt.worker is not None]
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)

    async def seen(self, msg: Inbound) -> bool:
        """True for an update already handled (Telegram re-sends after a failed delivery)."""
        if msg.update_id is None or await self.states.store.first_seen(msg.update_id):
            return False
        log.info("duplicate update ignored", extra={"update_id": msg.update_id})
        return True

    async def submit(
        self, msg: Inbound, out: Outbox, accepted: Callable[[], None] | None = None
    ) -> str:
        """Put the message in the chat's shared inbox, tell the user when it has to wait,
        and wait for it when this process runs it. The outcome: `ok`, `error` (answered
        with an error reply), `duplicate`, or `refused` (by a full inbox)."""
        rt = self.states.runtime(msg.chat_id)
        self.states.remember_out(msg.chat_id, out)
        self.start_sweeper()
        label, text = _label_of(msg)
        token = uuid.uuid4().hex
        entry = Entry(out=out, label=label, snippet=text, msg=msg)
        entry.done = asyncio.get_running_loop().create_future()
        busy_with: Entry | None = None
        async with rt.admission:  # FIFO: the inbox gets a chat's messages in call order
            rt.waiters[token] = entry
            try:
                # One atomic step: a crash leaves the message both stored and marked seen,
                # or neither (then a second delivery is taken as new).
                queued = await self.states.store.enqueue(
                    msg.chat_id, encode_item(token, msg), MAX_QUEUED, msg.update_id
                )
            except BaseException:
                rt.waiters.pop(token, None)
                raise
            length = queued.length
            if queued.duplicate:
                rt.waiters.pop(token, None)
                log.info("duplicate update ignored", extra={"update_id": msg.update_id})
                return "duplicate"
            if accepted is not None:  # stored, or refused for good: either way answered
                accepted()
            if length == 0:
                rt.waiters.pop(token, None)
            elif rt.worker is None:
                rt.worker = self._spawn_worker(msg.chat_id, rt)
            else:
                running = rt.current_entry if rt.current_entry is not entry else None
                if running is not None or length > 1:
                    busy_with = running or _OTHER_JOB
                    entry.told = True
        try:
            if length == 0:
                await self._floods.refused(msg, out)
                return "refused"
            if busy_with is not None:
                await self._tell(msg, out, "busy", busy_with=busy_with)
            await asyncio.shield(entry.done)
            return "error" if entry.failed else "ok"
        finally:
            rt.waiters.pop(token, None)
            self.states.release_if_idle(msg.chat_id)

    async def _tell(
        self, msg: Inbound, out: Outbox, key: str, *, busy_with: Entry | None = None, **kw: Any
    ) -> None:
        lang = lang_for(await self.states.store.load(msg.chat_id), msg)
        if busy_with is not None:
            kw["job"] = _job_text(busy_with, lang)
        await safe_send(out, SendText(t(key, lang, **kw)))

    def _spawn_worker(
        self, chat_id: int, rt: ChatRuntime, patience: float = 0.0
    ) -> asyncio.Task[None]:
        return asyncio.create_task(self._work(chat_id, rt, patience), name=f"chat-{chat_id}")

    def start_sweeper(self) -> None:
        if self._sweeper is None and not self._closing:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweep")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("sweep for orphaned work failed: %s", type(exc).__name__)

    async def sweep(self, patience: float = 0.0) -> None:
        """Start a worker for each chat with work in the store and none here; it runs the
        work only if it gets the chat's lock (a living holder keeps it)."""
        for chat_id in await self.states.store.chats_with_work():
            if self._only is not None and chat_id not in self._only:
                continue
            if self._outbox_for is None and self.states.last_out(chat_id) is None:
                continue  # no front end attached that could answer this chat
            rt = self.states.runtime(chat_id)
            if rt.worker is None and not self._closing:
                rt.worker = self._spawn_worker(chat_id, rt, patience)

    async def _work(self, chat_id: int, rt: ChatRuntime, patience: float) -> None:
        """Hold the chat's lock while its work lasts; without the lock, leave the chat's
        messages to the holder."""
        try:
            if not await self._lock(chat_id, rt, patience):
                await self._hand_over(chat_id, rt)
                return
            while True:
                await self._drain(chat_id, rt)
                # A message queued while the lock was being released is not left behind.
                if self._closing or not await self.states.store.queue_length(chat_id):
                    return
                if not await self._lock(chat_id, rt, 0.0):
                    await self._hand_over(chat_id, rt)
                    return
        except asyncio.CancelledError:
            _release(rt)
            raise
        except Exception as exc:
            ref = new_ref()
            log_failure("chat worker failed", ref, exc, chat_id)
            for entry in _release(rt):
                await safe_send(entry.out, SendText(apology(exc, fallback_lang(entry.msg), ref)))
        finally:
            rt.worker = None
            if not self._closing and any(e.done and not e.done.done() for e in rt.waiters.values()):
                rt.worker = self._spawn_worker(chat_id, rt)
            self.states.release_if_idle(chat_id)

    async def _lock(self, chat_id: int, rt: ChatRuntime, patience: float) -> bool:
        """Take the chat's lock, trying for up to `patience` seconds."""
        ttl = self.settings.lock_ttl_s
        deadline = time.monotonic() + patience
        while True:
            asked = time.monotonic()
            if await self.states.store.try_lock(chat_id, self.owner, ttl):
                rt.lease_until = asked + ttl
                return True
            if time.monotonic() >= deadline or self._closing:
                return False
            await asyncio.sleep(min(1.0, ttl / 4))

    async def _hand_over(self, chat_id: int, rt: ChatRuntime) -> None:
        """Another process holds the chat: it runs the messages waiting here, whose users
        are told so before their `handle` returns."""
        waiting = [e for e in rt.waiters.values() if e.done is not None and not e.done.done()]
        for entry in waiting:
            if not entry.told and entry.msg is not None:
                entry.told = True
                await self._tell(entry.msg, entry.out, "busy", busy_with=_OTHER_JOB)
        for entry in waiting:
            _finish(entry)

    async def _drain(self, chat_id: int, rt: ChatRuntime) -> None:
        """With the lock: resume orphaned exports, then run the inbox in order; unlock.

        A message's `handle` returns once the next one is taken or the lock is released,
        so whoever it answers finds the chat free when nothing else waits."""
        renewer = asyncio.create_task(self._renew_lock(chat_id, rt))
        ran: Entry | None = None
        try:
            resumed = await self._resume_orphans(chat_id, rt)
            while True:
                asked = time.monotonic()
                taken = await self.states.store.take_queued(
                    chat_id, self.owner, self.settings.lock_ttl_s
                )
                if taken.held:
                    rt.lease_until = asked + self.settings.lock_ttl_s
                else:
                    log.warning("chat lock lost, leaving its queue", extra={"chat_id": chat_id})
                    return
                if taken.item is None:
                    if await self.states.store.unindex_if_empty(chat_id):
                        continue
                    return
                if ran is not None:
                    _finish(ran)
                ran = await self._run_item(chat_id, rt, taken, resumed)
                await self.states.store.finish_queued(chat_id, self.owner)
        finally:
            renewer.cancel()
            try:
                await self.states.store.unlock(chat_id, self.owner)
            except Exception as exc:  # the lock lapses by itself; until then the chat waits
                log.warning(
                    "chat lock not released: %s", type(exc).__name__, extra={"chat_id": chat_id}
                )
            if ran is not None:
                _finish(ran)

    async def _resume_orphans(self, chat_id: int, rt: ChatRuntime) -> bool:
        """Exports in flight that nobody follows (we just took the lock): follow them."""
        state = await self.states.store.load(chat_id)
        for pending in state.pending:
            log.info("resuming export", extra={"chat_id": chat_id, "render_id": pending.render_id})
            entry = Entry(out=self._out_for(chat_id, rt), label="job_resume", resume=pending)
            entry.owned = self._outbox_for is not None
            await self._run_job(chat_id, entry, rt)
        return bool(state.pending)

    async def _run_item(
        self, chat_id: int, rt: ChatRuntime, taken: Taken, resumed: bool
    ) -> Entry | None:
        """One message from the inbox: this process's own, or one another process took."""
        try:
            token, msg = decode_item(taken.item or "", self.reader_for)
        except ValueError:
            log.warning("unreadable queued message dropped", extra={"chat_id": chat_id})
            return None
        entry = rt.waiters.get(token)
        if entry is None:
            label, text = _label_of(msg)
            entry = Entry(out=self._out_for(chat_id, rt), label=label, snippet=text, msg=msg)
            entry.owned = self._outbox_for is not None
        if not (taken.leftover and taken.sent):
            # New, or left by a process that stopped before the backend could have it.
            await self._run_job(chat_id, entry, rt, finish=False)
            return entry
        # The backend may have it from a process that stopped mid-job. A resumed export
        # finishes an export job; anything else is not run twice: the user is told instead.
        try:
            if not (resumed and entry.label == "job_export"):
                log.info("interrupted job reported", extra={"chat_id": chat_id})
                await self._tell(msg, entry.out, "interrupted", busy_with=entry)
        finally:
            await _close_owned(entry)
        return entry

    def _out_for(self, chat_id: int, rt: ChatRuntime) -> Outbox:
        """Where a job whose front end call is gone answers."""
        if self._outbox_for is not None:
            return self._outbox_for(chat_id)
        last = self.states.last_out(chat_id)
        if last is not None:
            return last
        log.warning("no front end to answer a chat", extra={"chat_id": chat_id})
        return _NOWHERE

    async def _run_job(
        self, chat_id: int, entry: Entry, rt: ChatRuntime, *, finish: bool = True
    ) -> None:
        rt.current_entry = entry
        rt.cancel_requested = False
        rt.cancel_reported = False
        update_id = entry.msg.update_id if entry.msg is not None else None
        with log_context(chat_id=chat_id, update_id=update_id):  # the task copies the context
            task = asyncio.create_task(self._run_entry(chat_id, entry, rt))
        rt.current = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            rt.current = None
            rt.current_entry = None
            await _close_owned(entry)
            if finish:
                _finish(entry)

    async def _renew_lock(self, chat_id: int, rt: ChatRuntime) -> None:
        """Keep the chat's lock while its work lasts. A lock found lost is never taken
        again: another process may hold the chat, so the job here is stopped."""
        ttl = self.settings.lock_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            asked = time.monotonic()
            try:
                held = await self.states.store.renew_lock(chat_id, self.owner, ttl)
            except Exception:
                log.warning("chat lock renewal failed", extra={"chat_id": chat_id}, exc_info=True)
                continue  # the lease runs out on its own if this lasts
            if held:
                rt.lease_until = asked + ttl
                continue
            log.warning("chat lock lost, stopping its job", extra={"chat_id": chat_id})
            rt.lease_until = 0.0
            if rt.current is not None:
                rt.current.cancel()
            return

    def _marker(self, chat_id: int, rt: ChatRuntime) -> Callable[[], Awaitable[None]]:
        """Before each request that hands the message to the backend: the first records
        it in the store, and a job whose lock is no longer surely ours stops there."""
        marked = False

        async def mark() -> None:
            nonlocal marked
            lapsed = time.monotonic() >= rt.lease_until
            if lapsed or not (marked or await self.states.store.mark_sent(chat_id, self.owner)):
                log.warning("chat lock lost, job stopped", extra={"chat_id": chat_id})
                raise asyncio.CancelledError
            marked = True

        return mark

    async def _run_entry(self, chat_id: int, entry: Entry, rt: ChatRuntime) -> None:
        """One job with every failure turned into a reply; a /cancel ends it politely."""
        try:
            state = await self.states.store.load(chat_id)
        except Exception as exc:
            ref = new_ref()
            log_failure("chat state unavailable", ref, exc, chat_id)
            await safe_send(entry.out, SendText(apology(exc, fallback_lang(entry.msg), ref)))
            return
        lang = lang_for(state, entry.msg) if entry.msg else (entry.resume or _NO_PENDING).lang
        out = FencedOutbox(entry.out, rt)
        turn = Turn(chat_id=chat_id, out=out, lang=lang, state=state, rt=rt)
        if entry.msg is not None:
            turn.on_send = self._marker(chat_id, rt)
        try:
            if entry.msg is not None:
                await self.states.persist_lang(turn)
                await self.actions.job(turn, entry.msg)
            elif entry.resume is not None:
                await self.exports.resume(turn, entry.resume)
        except asyncio.CancelledError:
            if not rt.cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if not rt.cancel_reported:
                await self.actions.stopped(turn, entry.label)
        except Exception as exc:
            await self.errors.reply(turn, exc)
        finally:
            entry.failed = turn.failed


_NO_PENDING = PendingExport(render_id="", started_at=0.0)


def _finish(entry: Entry) -> None:
    if entry.done is not None and not entry.done.done():
        entry.done.set_result(None)


def _release(rt: ChatRuntime) -> list[Entry]:
    """Let every `handle` still waiting here return; their messages stay in the inbox."""
    waiting = [e for e in rt.waiters.values() if e.done is not None and not e.done.done()]
    for entry in waiting:
        _finish(entry)
    return waiting


async def _close_owned(entry: Entry) -> None:
    """Close an outbox made for one job (a front end's may hold a typing indicator)."""
    close = getattr(entry.out, "close", None) if entry.owned else None
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


class _Nowhere:
    """The outbox of last resort, when no front end was attached."""

    async def send(self, op: Outbound) -> None:
        log.warning("answer dropped: no front end attached (%s)", type(op).__name__)
        if isinstance(op, SendVideo):
            raise DeliveryFailed("no front end attached")


_NOWHERE = _Nowhere()
_OTHER_JOB = Entry(out=_NOWHERE, label="job_other")


def _label_of(msg: Inbound) -> tuple[str, str]:
    """What a queued job is, in words for the "still working on …" reply."""
    action = button_action(msg.callback_data)
    if action == "export":
        return "job_export", ""
    if action == "new":
        return "job_new", ""
    if msg.attachments:
        return "job_upload", ""
    cmd = command_of(msg.text)
    if cmd is not None:
        return {"export": "job_export", "new": "job_new"}.get(cmd[0], "job_other"), ""
    intent = classify(msg.text).intent
    if intent is Intent.EXPORT:
        return "job_export", ""
    return "job_chat", snippet(msg.text)


def _job_text(entry: Entry | None, lang: str) -> str:
    if entry is None:
        return t("job_other", lang)
    if entry.label == "job_chat":
        return t("job_chat", lang, snippet=entry.snippet)
    return t(entry.label, lang)
