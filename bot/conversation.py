"""What the bot does with each message, whatever front end delivered it.

The conversation joins the router, the backend client and the chat store. A front end
calls `handle()` for every message as it arrives, concurrently (one task per message).
Control messages (/cancel, /credits, /status, /help, /lang, button presses) are answered
at once. Other messages go into the chat's inbox in the store, shared by every replica:
the process holding the chat's lock runs them one at a time, in order, and a message that
has to wait is answered at once. A process that dies leaves its lock to expire and its
chats' messages and exports in the store, where a periodic sweep in every process finds
them. Messages carrying an `update_id` are handled once, however often they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend import (
    ACCEPTED_EXTENSIONS,
    AgentCrash,
    BackendUnavailable,
    Credentials,
    ExportBlocked,
    FileKind,
    FileTooLarge,
    MissingClientId,
    ModelError,
    NemoApi,
    NemoClient,
    NemoError,
    OutOfCredits,
    ProtocolError,
    RateLimited,
    RenderFailed,
    RenderStatus,
    SessionNotFound,
    StateDelta,
    StreamBroken,
    TextDelta,
    TokenExpired,
    ToolCall,
    UnsupportedFile,
    UploadedFile,
    UploadFile,
    UploadLimits,
    describe_changes,
    is_exportable,
    preflight,
    summarize_draft,
)
from bot.conversation_inbox import decode_item, encode_item
from bot.conversation_text import (
    asks_for_export,
    command_of,
    draft_of,
    fmt_duration,
    fmt_elapsed,
    fmt_size,
    pick_lang,
    snippet,
    tool_hint,
)
from bot.io import (
    Attachment,
    Button,
    ChatAction,
    Inbound,
    Outbound,
    Outbox,
    Progress,
    ReaderFor,
    SendText,
    SendVideo,
    Stream,
    button_action,
)
from bot.logs import log_context
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import ChatState, ChatStore, PendingExport, StoreUnavailable
from bot.texts import t
from router import GuiAction, Intent, classify, read_agent_text

__all__ = ["Conversation", "upload_limits"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_CONTROL_COMMANDS = frozenset({"cancel", "credits", "status", "help", "lang"})
_CHAT_ACTION_EVERY_S = 4.5
# Messages one chat may have waiting in its inbox; more are refused, not lost silently,
# so a flood cannot grow the store without bound.
MAX_QUEUED = 20
_CANCEL_WAIT_S = 15.0


def upload_limits(settings: Settings) -> UploadLimits:
    """The per-kind size caps from the settings (MB there, bytes for the client)."""
    return UploadLimits(
        image_bytes=int(settings.max_image_mb * MIB),
        video_bytes=int(settings.max_video_mb * MIB),
        audio_bytes=int(settings.max_audio_mb * MIB),
    )


@dataclass
class _Entry:
    """A job: a message to handle, or a pending export to resume."""

    out: Outbox
    label: str
    snippet: str = ""
    msg: Inbound | None = None
    resume: PendingExport | None = None
    done: asyncio.Future[None] | None = None
    told: bool = False  # the user was told the message waits
    owned: bool = False  # `out` was made for this job and is closed after it


@dataclass
class _ChatRuntime:
    """What this process knows about one chat's jobs."""

    # Messages handed in here and not yet run, by their inbox token: their `handle` call
    # waits, and they are answered through its outbox.
    waiters: dict[str, _Entry] = field(default_factory=dict)
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)
    worker: asyncio.Task[None] | None = None
    current: asyncio.Task[None] | None = None
    current_entry: _Entry | None = None
    cancel_requested: bool = False
    cancel_reported: bool = False
    state_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_out: Outbox | None = None


@dataclass
class _Turn:
    """One piece of work for one chat: its state, language, outbox and backend view."""

    chat_id: int
    out: Outbox
    lang: str
    state: ChatState
    rt: _ChatRuntime
    api: NemoApi | None = None


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
    ) -> None:
        self._client = client
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._web_base = web_base.rstrip("/")
        self._operator = settings.nemo_token is not None
        self._limits = upload_limits(settings)
        # Stored as the value of the chat locks it holds: tells operators which process.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._chats: dict[int, _ChatRuntime] = {}
        self._closing = False
        self._reader_for = reader_for
        self._outbox_for: Callable[[int], Outbox] | None = None
        self._only: frozenset[int] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # --- the front end's entry points ----------------------------------------------------

    def is_control(self, msg: Inbound) -> bool:
        """Messages that bypass the per-chat queue: /cancel, /credits, /status, /help,
        /lang, the same asked in words, and button presses."""
        if msg.callback_data is not None:
            return True
        if msg.attachments:
            return False
        cmd = command_of(msg.text)
        if cmd is not None:
            return cmd[0] in _CONTROL_COMMANDS
        text = msg.text.strip()
        if not text:
            return False
        decision = classify(text)
        return decision.intent in (Intent.CREDITS, Intent.STATUS)

    async def handle(
        self, msg: Inbound, out: Outbox, *, accepted: Callable[[], None] | None = None
    ) -> None:
        """Answer one message. Never raises.

        Returns when its work is done here, or when it waits in the chat's shared inbox
        for the process that holds the chat (which answers it through its own front end).
        Messages of one chat are queued in the order `handle` was called. `accepted` is
        called as soon as the message is in the chat's inbox in the store, where it
        outlives this process (a front end acknowledges its delivery then).
        Logs one line per message: its intent, outcome and duration."""
        started = time.perf_counter()
        with log_context(chat_id=msg.chat_id, update_id=msg.update_id):
            outcome = await self._handle(msg, out, accepted)
            log.info(
                "message handled",
                extra={
                    "intent": intent_of(msg),
                    "outcome": outcome,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    async def _handle(self, msg: Inbound, out: Outbox, accepted: Callable[[], None] | None) -> str:
        if self._closing:
            return "shutting_down"
        try:
            if msg.callback_data is not None and button_action(msg.callback_data) is None:
                return "unknown_button"
            if self._runs_now(msg):
                if await self._seen(msg):
                    return "duplicate"
                await self._run_control(msg, out)
                return "ok"
            if not msg.text.strip() and not msg.attachments and msg.callback_data is None:
                return "empty"
            await self._queue(msg, out, accepted)
            return "ok"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ref = _ref()
            log.exception("unhandled error ref=%s", ref)
            await _safe_send(out, SendText(_apology(exc, _fallback_lang(msg), ref)))
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
        self._outbox_for = outbox_for
        self._only = frozenset(only) if only is not None else None
        if reader_for is not None:
            self._reader_for = reader_for
        # A lock left by a dead process lapses within its TTL: wait that long for it here.
        await self._sweep(patience=self._settings.lock_ttl_s + 0.5)
        self._start_sweeper()

    async def wait_idle(self) -> None:
        """Wait until no job of any chat is queued or running in this process."""
        while True:
            workers = [rt.worker for rt in self._chats.values() if rt.worker is not None]
            if not workers:
                return
            await asyncio.wait(workers)

    async def aclose(self) -> None:
        """Stop every job without cancelling renders: pending exports and queued messages
        stay in the store for the next process."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        workers = [rt.worker for rt in self._chats.values() if rt.worker is not None]
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)

    # --- the per-chat queue --------------------------------------------------------------

    def _runs_now(self, msg: Inbound) -> bool:
        """Control messages, except buttons that start a job (export, new project)."""
        if msg.callback_data is not None:
            return button_action(msg.callback_data) in ("status", "credits")
        return self.is_control(msg)

    def _runtime(self, chat_id: int) -> _ChatRuntime:
        rt = self._chats.get(chat_id)
        if rt is None:
            rt = self._chats[chat_id] = _ChatRuntime()
        return rt

    async def _seen(self, msg: Inbound) -> bool:
        """True for an update already handled (Telegram re-sends after a failed delivery)."""
        if msg.update_id is None or await self._store.first_seen(msg.update_id):
            return False
        log.info("duplicate update ignored", extra={"update_id": msg.update_id})
        return True

    async def _queue(
        self, msg: Inbound, out: Outbox, accepted: Callable[[], None] | None = None
    ) -> None:
        """Put the message in the chat's shared inbox, tell the user when it has to wait,
        and wait for it when this process runs it."""
        rt = self._runtime(msg.chat_id)
        rt.last_out = out
        self._start_sweeper()
        label, text = _label_of(msg)
        token = uuid.uuid4().hex
        entry = _Entry(out=out, label=label, snippet=text, msg=msg)
        entry.done = asyncio.get_running_loop().create_future()
        busy_with: _Entry | None = None
        async with rt.admission:  # FIFO: the inbox gets a chat's messages in call order
            if await self._seen(msg):
                return
            rt.waiters[token] = entry
            try:
                length = await self._store.enqueue(msg.chat_id, encode_item(token, msg), MAX_QUEUED)
            except BaseException:
                rt.waiters.pop(token, None)
                raise
            if accepted is not None and length:
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
                await self._tell(msg, out, "queue_full", count=MAX_QUEUED)
                return
            if busy_with is not None:
                await self._tell(msg, out, "busy", busy_with=busy_with)
            await asyncio.shield(entry.done)
        finally:
            rt.waiters.pop(token, None)

    async def _tell(
        self, msg: Inbound, out: Outbox, key: str, *, busy_with: _Entry | None = None, **kw: Any
    ) -> None:
        lang = self._lang(await self._store.load(msg.chat_id), msg)
        if busy_with is not None:
            kw["job"] = _job_text(busy_with, lang)
        await _safe_send(out, SendText(t(key, lang, **kw)))

    def _spawn_worker(
        self, chat_id: int, rt: _ChatRuntime, patience: float = 0.0
    ) -> asyncio.Task[None]:
        return asyncio.create_task(self._work(chat_id, rt, patience), name=f"chat-{chat_id}")

    def _start_sweeper(self) -> None:
        if self._sweeper is None and not self._closing:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweep")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                await self._sweep()
            except Exception as exc:
                log.warning("sweep for orphaned work failed: %s", type(exc).__name__)

    async def _sweep(self, patience: float = 0.0) -> None:
        """Start a worker for each chat with work in the store and none here; it runs the
        work only if it gets the chat's lock (a living holder keeps it)."""
        for chat_id in await self._store.chats_with_work():
            if self._only is not None and chat_id not in self._only:
                continue
            known = self._chats.get(chat_id)
            if self._outbox_for is None and (known is None or known.last_out is None):
                continue  # no front end attached that could answer this chat
            rt = self._runtime(chat_id)
            if rt.worker is None and not self._closing:
                rt.worker = self._spawn_worker(chat_id, rt, patience)

    async def _work(self, chat_id: int, rt: _ChatRuntime, patience: float) -> None:
        """Hold the chat's lock while its work lasts; without the lock, leave the chat's
        messages to the holder."""
        try:
            if not await self._lock(chat_id, patience):
                await self._hand_over(chat_id, rt)
                return
            while True:
                await self._drain(chat_id, rt)
                # A message queued while the lock was being released is not left behind.
                if self._closing or not await self._store.queue_length(chat_id):
                    return
                if not await self._store.try_lock(chat_id, self._owner, self._settings.lock_ttl_s):
                    await self._hand_over(chat_id, rt)
                    return
        except asyncio.CancelledError:
            _release(rt)
            raise
        except Exception as exc:
            ref = _ref()
            log.exception("chat worker failed ref=%s", ref, extra={"chat_id": chat_id})
            for entry in _release(rt):
                await _safe_send(entry.out, SendText(_apology(exc, _fallback_lang(entry.msg), ref)))
        finally:
            rt.worker = None
            if not self._closing and any(e.done and not e.done.done() for e in rt.waiters.values()):
                rt.worker = self._spawn_worker(chat_id, rt)

    async def _lock(self, chat_id: int, patience: float) -> bool:
        """Take the chat's lock, trying for up to `patience` seconds."""
        ttl = self._settings.lock_ttl_s
        deadline = time.monotonic() + patience
        while not await self._store.try_lock(chat_id, self._owner, ttl):
            if time.monotonic() >= deadline or self._closing:
                return False
            await asyncio.sleep(min(1.0, ttl / 4))
        return True

    async def _hand_over(self, chat_id: int, rt: _ChatRuntime) -> None:
        """Another process holds the chat: it runs the messages waiting here, whose users
        are told so before their `handle` returns."""
        waiting = [e for e in rt.waiters.values() if e.done is not None and not e.done.done()]
        for entry in waiting:
            if not entry.told and entry.msg is not None:
                entry.told = True
                await self._tell(entry.msg, entry.out, "busy", busy_with=_OTHER_JOB)
        for entry in waiting:
            _finish(entry)

    async def _drain(self, chat_id: int, rt: _ChatRuntime) -> None:
        """With the lock: resume orphaned exports, then run the inbox in order; unlock.

        A message's `handle` returns once the next one is taken or the lock is released,
        so whoever it answers finds the chat free when nothing else waits."""
        renewer = asyncio.create_task(self._renew_lock(chat_id))
        ran: _Entry | None = None
        try:
            resumed = await self._resume_orphans(chat_id, rt)
            while True:
                taken = await self._store.take_queued(
                    chat_id, self._owner, self._settings.lock_ttl_s
                )
                if not taken.held:
                    log.warning("chat lock lost, leaving its queue", extra={"chat_id": chat_id})
                    return
                if taken.item is None:
                    if await self._store.unindex_if_empty(chat_id):
                        continue
                    return
                if ran is not None:
                    _finish(ran)
                ran = await self._run_item(chat_id, rt, taken.item, taken.leftover, resumed)
                await self._store.finish_queued(chat_id)
        finally:
            renewer.cancel()
            with contextlib.suppress(Exception):
                await self._store.unlock(chat_id, self._owner)
            if ran is not None:
                _finish(ran)

    async def _resume_orphans(self, chat_id: int, rt: _ChatRuntime) -> bool:
        """Exports in flight that nobody follows (we just took the lock): follow them."""
        state = await self._store.load(chat_id)
        for pending in state.pending:
            log.info("resuming export", extra={"chat_id": chat_id, "render_id": pending.render_id})
            entry = _Entry(out=self._out_for(chat_id, rt), label="job_resume", resume=pending)
            entry.owned = self._outbox_for is not None
            await self._run_job(chat_id, entry, rt)
        return bool(state.pending)

    async def _run_item(
        self, chat_id: int, rt: _ChatRuntime, item: str, leftover: bool, resumed: bool
    ) -> _Entry | None:
        """One message from the inbox: this process's own, or one another process took."""
        try:
            token, msg = decode_item(item, self._reader_for)
        except ValueError:
            log.warning("unreadable queued message dropped", extra={"chat_id": chat_id})
            return None
        entry = rt.waiters.get(token)
        if entry is None:
            label, text = _label_of(msg)
            entry = _Entry(out=self._out_for(chat_id, rt), label=label, snippet=text, msg=msg)
            entry.owned = self._outbox_for is not None
        if not leftover:
            await self._run_job(chat_id, entry, rt, finish=False)
            return entry
        # Taken by a process that stopped mid-job. A resumed export finishes an export job;
        # anything else is not run twice: the user is told instead.
        try:
            if not (resumed and entry.label == "job_export"):
                log.info("interrupted job reported", extra={"chat_id": chat_id})
                await self._tell(msg, entry.out, "interrupted", busy_with=entry)
        finally:
            await _close_owned(entry)
        return entry

    def _out_for(self, chat_id: int, rt: _ChatRuntime) -> Outbox:
        """Where a job whose front end call is gone answers."""
        if self._outbox_for is not None:
            return self._outbox_for(chat_id)
        if rt.last_out is not None:
            return rt.last_out
        log.warning("no front end to answer a chat", extra={"chat_id": chat_id})
        return _NOWHERE

    async def _run_job(
        self, chat_id: int, entry: _Entry, rt: _ChatRuntime, *, finish: bool = True
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

    async def _renew_lock(self, chat_id: int) -> None:
        ttl = self._settings.lock_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self._store.renew_lock(chat_id, self._owner, ttl):
                    log.warning("chat lock lost, taking it again", extra={"chat_id": chat_id})
                    await self._store.try_lock(chat_id, self._owner, ttl)
            except Exception:
                log.warning("chat lock renewal failed", extra={"chat_id": chat_id}, exc_info=True)

    async def _run_entry(self, chat_id: int, entry: _Entry, rt: _ChatRuntime) -> None:
        """One job with every failure turned into a reply; a /cancel ends it politely."""
        try:
            state = await self._store.load(chat_id)
        except Exception as exc:
            ref = _ref()
            log.exception("chat state unavailable ref=%s", ref, extra={"chat_id": chat_id})
            await _safe_send(entry.out, SendText(_apology(exc, _fallback_lang(entry.msg), ref)))
            return
        lang = self._lang(state, entry.msg) if entry.msg else (entry.resume or _NO_PENDING).lang
        turn = _Turn(chat_id=chat_id, out=entry.out, lang=lang, state=state, rt=rt)
        try:
            if entry.msg is not None:
                await self._persist_lang(turn)
                await self._job(turn, entry.msg)
            elif entry.resume is not None:
                await self._resume(turn, entry.resume)
        except asyncio.CancelledError:
            if not rt.cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if not rt.cancel_reported:
                await _safe_send(turn.out, SendText(t("stopped", turn.lang)))
        except Exception as exc:
            await self._reply_error(turn, exc)

    async def _reply_error(self, turn: _Turn, exc: BaseException) -> None:
        """Answer a failure; even a failure while answering ends in a logged apology."""
        try:
            await self._explain_error(turn, exc)
        except Exception:
            ref = _ref()
            log.exception("error reply failed ref=%s", ref, extra={"chat_id": turn.chat_id})
            await _safe_send(turn.out, SendText(t("err_unknown", turn.lang, ref=ref)))

    # --- control messages ----------------------------------------------------------------

    async def _run_control(self, msg: Inbound, out: Outbox) -> None:
        state = await self._store.load(msg.chat_id)
        turn = _Turn(
            chat_id=msg.chat_id,
            out=out,
            lang=self._lang(state, msg),
            state=state,
            rt=self._runtime(msg.chat_id),
        )
        try:
            action = button_action(msg.callback_data)
            cmd = command_of(msg.text)
            name = action or (cmd[0] if cmd else "")
            if not name:
                intent = classify(msg.text).intent
                name = "credits" if intent is Intent.CREDITS else "status"
            self._count(name)
            if name == "cancel":
                await self._cancel(turn)
            elif name == "credits":
                await self._credits(turn)
            elif name == "status":
                await self._with_session(turn, lambda: self._status(turn), retry=False)
            elif name == "help":
                await out.send(SendText(t("help", turn.lang)))
            elif name == "lang":
                await self._set_lang(turn, cmd[1] if cmd else "")
        except Exception as exc:
            await self._reply_error(turn, exc)

    async def _cancel(self, turn: _Turn) -> None:
        rt = turn.rt
        running = rt.current
        if running is not None and not running.done():
            rt.cancel_requested = True
            running.cancel()
            await asyncio.wait({running}, timeout=_CANCEL_WAIT_S)
            return
        state = await self._store.load(turn.chat_id)
        if not state.pending:
            probe = f"{self._owner}:probe"
            if await self._store.try_lock(turn.chat_id, probe, 1.0):
                await self._store.unlock(turn.chat_id, probe)
                await turn.out.send(SendText(t("nothing_to_cancel", turn.lang)))
            else:  # another replica holds the chat's job; it cannot be reached from here
                await turn.out.send(SendText(t("cancel_elsewhere", turn.lang)))
            return
        # Exports followed by another process (or left by a crash): stop them server-side.
        api = await self._api(turn)
        for pending in state.pending:
            try:
                await api.cancel_export(pending.render_id)
            except NemoError as exc:
                log.warning(
                    "cancel of a pending export failed: %s",
                    type(exc).__name__,
                    extra={"chat_id": turn.chat_id, "render_id": pending.render_id},
                )
        ids = {p.render_id for p in state.pending}
        await self._update(turn, lambda s: _drop_pending(s, ids))
        await turn.out.send(SendText(t("export_cancelled", turn.lang)))

    async def _set_lang(self, turn: _Turn, arg: str) -> None:
        choice = arg.strip().lower()
        if choice in ("en", "english", "英文", "英语"):
            lang, locked = "en", True
        elif choice in ("zh", "cn", "chinese", "中文", "汉语"):
            lang, locked = "zh", True
        elif choice == "auto":
            lang, locked = turn.lang, False
        else:
            await turn.out.send(SendText(t("lang_usage", turn.lang)))
            return

        def apply(s: ChatState) -> None:
            s.lang = lang
            s.lang_locked = locked

        await self._update(turn, apply)
        turn.lang = lang
        await turn.out.send(SendText(t("lang_set" if locked else "lang_auto", lang)))

    # --- jobs ----------------------------------------------------------------------------

    async def _job(self, turn: _Turn, msg: Inbound) -> None:
        action = button_action(msg.callback_data)
        if action == "export":
            self._count("export")
            await self._with_session(turn, lambda: self._export(turn), retry=False)
            return
        if action == "new":
            self._count("new")
            await self._new_project(turn)
            return
        cmd = command_of(msg.text)
        if cmd is not None and not msg.attachments:
            await self._command(turn, cmd[0], cmd[1])
            return
        text = msg.text.strip()
        if msg.attachments:
            self._count("files")
            await self._with_session(
                turn, lambda: self._upload_files(turn, msg.attachments, bool(text)), retry=True
            )
            if cmd is not None:
                await self._command(turn, cmd[0], cmd[1])
                return
            if not text:
                return
        await self._text(turn, text)

    async def _command(self, turn: _Turn, name: str, arg: str) -> None:
        self._count(name if name in ("start", "new", "export") else "other_command")
        if name == "start":
            if turn.state.session_id is None:
                await self._ensure_session(turn)
            else:
                await turn.out.send(SendText(t("welcome_back", turn.lang)))
                await turn.out.send(SendText(t("welcome", turn.lang), buttons=self._menu(turn)))
        elif name == "new":
            await self._new_project(turn)
        elif name == "export":
            await self._with_session(turn, lambda: self._export(turn), retry=False)
        elif name == "upload":
            urls = tuple(w for w in arg.split() if w.startswith(("http://", "https://")))
            if urls:
                await self._with_session(turn, lambda: self._upload_urls(turn, urls), retry=True)
            else:
                await self._ask_for_file(turn)
        else:
            await turn.out.send(SendText(t("help", turn.lang)))

    async def _text(self, turn: _Turn, text: str) -> None:
        """Route a text: direct intents become API calls, the rest goes to the agent."""
        decision = classify(text)
        self._count(str(decision.intent))
        log.info(
            "routed",
            extra={
                "chat_id": turn.chat_id,
                "intent": str(decision.intent),
                "score": round(decision.score, 3),
                "reason": decision.reason,
            },
        )
        if decision.intent is Intent.EXPORT:
            await self._with_session(turn, lambda: self._export(turn), retry=False)
        elif decision.intent is Intent.CREDITS:
            await self._credits(turn)
        elif decision.intent is Intent.STATUS:
            await self._with_session(turn, lambda: self._status(turn), retry=False)
        elif decision.intent is Intent.UPLOAD:
            if decision.urls:
                urls = decision.urls
                await self._with_session(turn, lambda: self._upload_urls(turn, urls), retry=True)
            else:
                await self._ask_for_file(turn)
        else:
            await self._with_session(turn, lambda: self._chat(turn, text), retry=True)

    async def _with_session(
        self, turn: _Turn, action: Callable[[], Awaitable[None]], *, retry: bool
    ) -> None:
        """Run `action` in the chat's session; a lost session is replaced and the user told,
        and an action that makes sense in a fresh project runs once more there."""
        await self._ensure_session(turn)
        try:
            await action()
        except SessionNotFound:
            log.info("session lost, starting a new one", extra={"chat_id": turn.chat_id})
            await self._replace_session(turn)
            await turn.out.send(SendText(t("session_restarted", turn.lang)))
            if retry:
                await action()
            else:
                await turn.out.send(SendText(t("status_empty", turn.lang)))

    # --- set-up, credentials and the session ---------------------------------------------

    async def _api(self, turn: _Turn) -> NemoApi:
        """The chat's backend view, with a token of its own (or the operator's)."""
        if turn.api is not None:
            return turn.api
        state = turn.state
        if state.client_id is None:
            client_id = str(uuid.uuid4())

            def set_client(s: ChatState) -> None:
                s.client_id = s.client_id or client_id

            await self._update(turn, set_client)
        client_id = turn.state.client_id or ""
        creds: Credentials | None = None
        if not self._operator and turn.state.token:
            expires = turn.state.token_expires_at
            creds = Credentials(
                token=turn.state.token,
                client_id=client_id,
                expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
                anonymous=True,
            )
            if creds.expired():
                creds = None
        if creds is None:
            creds = await self._client.credentials(client_id)
            if creds.anonymous:
                await self._save_creds(turn.chat_id, creds, turn)
        chat_id = turn.chat_id

        async def on_renew(new: Credentials) -> None:
            await self._save_creds(chat_id, new, turn)

        turn.api = self._client.bind(creds, on_renew=on_renew)
        return turn.api

    async def _save_creds(self, chat_id: int, creds: Credentials, turn: _Turn) -> None:
        log.info("backend token stored", extra={"chat_id": chat_id})

        def apply(s: ChatState) -> None:
            s.token = creds.token
            s.token_expires_at = creds.expires_at.timestamp() if creds.expires_at else None
            if creds.client_id:
                s.client_id = creds.client_id

        await self._update(turn, apply)

    async def _ensure_session(self, turn: _Turn) -> bool:
        """First contact: "Setting things up…", a token and a session, then "Ready"."""
        if turn.state.session_id is not None:
            return False
        ref = _ref("setup")
        await turn.out.send(Progress(ref, t("setup", turn.lang)))
        try:
            api = await self._api(turn)
            session = await api.create_session(turn.lang)
        except Exception:
            await _safe_send(turn.out, Progress(ref, t("setup_failed", turn.lang), done=True))
            raise

        def apply(s: ChatState) -> None:
            s.session_id = session.session_id
            s.task_id = session.task_id
            s.lang = turn.lang
            s.last_draft = None

        await self._update(turn, apply)
        log.info("session created", extra={"chat_id": turn.chat_id, "lang": turn.lang})
        await turn.out.send(Progress(ref, t("ready", turn.lang), done=True))
        await turn.out.send(SendText(t("welcome", turn.lang), buttons=self._menu(turn)))
        return True

    async def _replace_session(self, turn: _Turn) -> None:
        api = await self._api(turn)
        session = await api.create_session(turn.lang)

        def apply(s: ChatState) -> None:
            s.session_id = session.session_id
            s.task_id = session.task_id
            s.last_draft = None

        await self._update(turn, apply)

    async def _new_project(self, turn: _Turn) -> None:
        if turn.state.session_id is None:
            await self._ensure_session(turn)
            return
        await self._replace_session(turn)
        log.info("new project", extra={"chat_id": turn.chat_id})
        await turn.out.send(SendText(t("new_project", turn.lang)))

    def _session_id(self, turn: _Turn) -> str:
        sid = turn.state.session_id
        assert sid is not None, "the session is ensured before any action"
        return sid

    # --- direct actions ------------------------------------------------------------------

    async def _credits(self, turn: _Turn) -> None:
        api = await self._api(turn)
        c = await api.credits()
        await turn.out.send(
            SendText(t("credits", turn.lang, available=c.available, frozen=c.frozen, total=c.total))
        )

    async def _status(self, turn: _Turn) -> None:
        api = await self._api(turn)
        project = await api.state(self._session_id(turn))
        await self._remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("status_empty", turn.lang)))
            return
        summary = summarize_draft(project.draft, turn.lang)
        text = f"{t('status', turn.lang, summary=summary)}\n\n{t('status_hint', turn.lang)}"
        await turn.out.send(SendText(text, buttons=(self._button("export", turn.lang),)))

    async def _ask_for_file(self, turn: _Turn) -> None:
        await turn.out.send(
            SendText(
                t(
                    "upload_ask",
                    turn.lang,
                    formats=_formats(ACCEPTED_EXTENSIONS),
                    image_mb=_mb(self._limits.image_bytes),
                    video_mb=_mb(self._limits.video_bytes),
                    audio_mb=_mb(self._limits.audio_bytes),
                )
            )
        )

    # --- export --------------------------------------------------------------------------

    async def _export(self, turn: _Turn) -> None:
        api = await self._api(turn)
        sid = self._session_id(turn)
        project = await api.state(sid)
        await self._remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("nothing_to_export", turn.lang)))
            return
        ref = _ref("export")
        await turn.out.send(
            Progress(ref, t("export_progress", turn.lang, percent=0, elapsed=fmt_elapsed(0)))
        )
        await turn.out.send(ChatAction("upload_video"))
        job = await api.start_export(sid, project.draft)
        pending = PendingExport(
            render_id=job.id, started_at=time.time(), lang=turn.lang, progress_ref=ref
        )
        await self._update(turn, lambda s: s.pending.append(pending))
        log.info("export started", extra={"chat_id": turn.chat_id, "render_id": job.id})
        await self._follow_export(turn, pending)

    async def _resume(self, turn: _Turn, pending: PendingExport) -> None:
        state = await self._store.load(turn.chat_id)
        turn.state = state
        if not any(p.render_id == pending.render_id for p in state.pending):
            return  # delivered or cancelled meanwhile (e.g. by another replica)
        await self._follow_export(turn, pending)

    async def _follow_export(self, turn: _Turn, pending: PendingExport) -> None:
        """Poll the render until it is done, failed, cancelled or past the deadline."""
        api = await self._api(turn)
        lang = turn.lang
        ref = pending.progress_ref or _ref("export")
        render_id = pending.render_id
        deadline = pending.started_at + self._settings.export_deadline_s
        interval = self._settings.export_poll_interval_s
        shown = t("export_progress", lang, percent=0, elapsed=fmt_elapsed(0))
        percent = 0
        if self._metrics:
            self._metrics.exports_pending.inc()
        try:
            while True:
                try:
                    job = await api.export_status(render_id)
                except (BackendUnavailable, RateLimited) as exc:
                    # A render runs on without us: keep polling through short outages.
                    log.warning(
                        "export status unavailable: %s",
                        type(exc).__name__,
                        extra={"chat_id": turn.chat_id, "render_id": render_id},
                    )
                    job = None
                elapsed = fmt_elapsed(time.time() - pending.started_at)
                if job is not None and job.status is RenderStatus.COMPLETED and job.url:
                    done = t("export_done", lang, elapsed=elapsed)
                    await turn.out.send(Progress(ref, done, done=True))
                    await turn.out.send(
                        SendVideo(
                            url=job.url,
                            caption=t("export_caption", lang),
                            buttons=(self._button("new", lang), self._button("credits", lang)),
                        )
                    )
                    await self._end_export(turn, render_id, "completed")
                    return
                if job is not None and job.status is RenderStatus.FAILED:
                    await turn.out.send(Progress(ref, t("export_failed_line", lang), done=True))
                    await turn.out.send(SendText(_render_failed_text(job.error, lang)))
                    await self._end_export(turn, render_id, "failed")
                    return
                if job is not None and job.status is RenderStatus.CANCELLED:
                    await turn.out.send(Progress(ref, t("export_stopped_line", lang), done=True))
                    await turn.out.send(SendText(t("export_cancelled_remote", lang)))
                    await self._end_export(turn, render_id, "cancelled")
                    return
                now = time.time()
                if now >= deadline:
                    await self._cancel_render(api, turn, render_id)
                    await turn.out.send(Progress(ref, t("export_timeout_line", lang), done=True))
                    minutes = max(1, round(self._settings.export_deadline_s / 60))
                    await turn.out.send(SendText(t("export_deadline", lang, minutes=minutes)))
                    await self._end_export(turn, render_id, "deadline")
                    return
                if job is not None:
                    # Shown progress never goes backwards, whatever the service reports.
                    percent = max(percent, min(99, int(job.progress)))
                    text = t("export_progress", lang, percent=percent, elapsed=elapsed)
                    if text != shown:
                        await turn.out.send(Progress(ref, text))
                        shown = text
                await turn.out.send(ChatAction("upload_video"))
                await asyncio.sleep(max(0.0, min(interval, deadline - now)))
        except asyncio.CancelledError:
            if turn.rt.cancel_requested:
                await self._cancel_render(api, turn, render_id)
                await _safe_send(turn.out, Progress(ref, t("export_stopped_line", lang), done=True))
                await _safe_send(turn.out, SendText(t("export_cancelled", lang)))
                turn.rt.cancel_reported = True
                await self._end_export(turn, render_id, "cancelled")
            raise
        finally:
            if self._metrics:
                self._metrics.exports_pending.dec()

    async def _cancel_render(self, api: NemoApi, turn: _Turn, render_id: str) -> None:
        try:
            await api.cancel_export(render_id)
            log.info("render cancelled", extra={"chat_id": turn.chat_id, "render_id": render_id})
        except NemoError as exc:
            log.warning(
                "render cancel failed: %s",
                type(exc).__name__,
                extra={"chat_id": turn.chat_id, "render_id": render_id},
            )

    async def _end_export(self, turn: _Turn, render_id: str, outcome: str) -> None:
        log.info(
            "export finished",
            extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
        )
        if self._metrics:
            self._metrics.exports.labels(outcome).inc()
        await self._update(turn, lambda s: _drop_pending(s, {render_id}))

    # --- files ---------------------------------------------------------------------------

    async def _upload_files(
        self, turn: _Turn, attachments: Sequence[Attachment], has_text: bool
    ) -> None:
        """Check every file before reading it, then send all good ones in one upload."""
        checked: list[tuple[Attachment, FileKind]] = []
        for item in attachments:
            kind = await self._preflight(turn, item.name, item.mime, item.size or 0)
            if kind is not None:
                checked.append((item, kind))
        files: list[UploadFile] = []
        kinds: list[FileKind] = []
        for item, kind in checked:
            data = await item.read()
            if await self._preflight(turn, item.name, item.mime, len(data)) is None:
                continue
            files.append(UploadFile(name=item.name, mime=item.mime, data=data, size=len(data)))
            kinds.append(kind)
        if not files:
            return
        api = await self._api(turn)
        await turn.out.send(ChatAction("typing"))
        uploaded = await api.upload_files(self._session_id(turn), files)
        sizes = [f.size for f in files]
        await self._confirm_upload(turn, uploaded, kinds, sizes, suggest=not has_text)

    async def _preflight(
        self, turn: _Turn, name: str, mime: str | None, size: int
    ) -> FileKind | None:
        try:
            return preflight(name, mime, size, self._limits)
        except UnsupportedFile as exc:
            accepted = exc.accepted or ACCEPTED_EXTENSIONS
            await turn.out.send(
                SendText(t("file_rejected_type", turn.lang, name=name, formats=_formats(accepted)))
            )
        except FileTooLarge as exc:
            kind = _kind_of_name(name, mime)
            await turn.out.send(
                SendText(
                    t(
                        "file_rejected_size",
                        turn.lang,
                        name=name,
                        size=fmt_size(exc.size if exc.size is not None else size),
                        kind=t(f"kind_{kind}", turn.lang),
                        limit=fmt_size(exc.limit),
                    )
                )
            )
        return None

    async def _upload_urls(self, turn: _Turn, urls: Sequence[str]) -> None:
        api = await self._api(turn)
        await turn.out.send(ChatAction("typing"))
        uploaded = await api.upload_urls(self._session_id(turn), urls)
        await self._confirm_upload(turn, uploaded, [], [], suggest=True)

    async def _confirm_upload(
        self,
        turn: _Turn,
        uploaded: Sequence[UploadedFile],
        kinds: Sequence[FileKind],
        sizes: Sequence[int],
        *,
        suggest: bool,
    ) -> None:
        lang = turn.lang
        lines: list[str] = []
        seen: list[str] = []
        for i, f in enumerate(uploaded):
            kind = _kind_word(f.file_type) or (str(kinds[i]) if i < len(kinds) else "other")
            seen.append(kind)
            details: list[str] = []
            if f.duration:
                details.append(fmt_duration(f.duration))
            if f.width and f.height:
                details.append(f"{f.width}×{f.height}")
            size = f.size if f.size is not None else (sizes[i] if i < len(sizes) else None)
            if size is not None:
                details.append(fmt_size(size))
            lines.append(
                t(
                    "file_line",
                    lang,
                    name=f.filename or "?",
                    kind=t(f"kind_{kind}", lang),
                    details=f" ({', '.join(details)})" if details else "",
                )
            )
        count = (
            t("files_count_one", lang)
            if len(uploaded) == 1
            else t("files_count_many", lang, n=len(uploaded))
        )
        text = t("upload_received", lang, count=count, lines="\n".join(lines))
        if suggest:
            nxt = "next_image" if "image" in seen else "next_video" if "video" in seen else None
            nxt = nxt or ("next_audio" if "audio" in seen else None)
            if nxt:
                text = f"{text}\n\n{t(nxt, lang)}"
        log.info("files uploaded", extra={"chat_id": turn.chat_id, "count": len(uploaded)})
        await turn.out.send(SendText(text))

    # --- the agent's stream --------------------------------------------------------------

    async def _chat(self, turn: _Turn, text: str) -> None:
        """Stream the agent's answer into one message, with progress for tools and quiet."""
        api = await self._api(turn)
        sid = self._session_id(turn)
        lang = turn.lang
        before = turn.state.last_draft
        stream_ref = _ref("reply")
        quiet = _Quiet(out=turn.out, lang=lang, ref=_ref("work"), every=self._quiet_s())
        visible = ""
        new_draft: dict[str, Any] | None = None
        model_error: ModelError | None = None
        crash: AgentCrash | None = None
        await turn.out.send(ChatAction("typing"))
        watchdog = asyncio.create_task(quiet.watch())
        if self._metrics:
            self._metrics.streams_open.inc()
        events = api.chat(sid, text)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    visible += event.text
                    quiet.touch()
                    await turn.out.send(Stream(stream_ref, visible))
                elif isinstance(event, ToolCall):
                    quiet.touch()
                    await quiet.show(tool_hint(event.name, lang))
                elif isinstance(event, StateDelta):
                    draft = draft_of(event.delta.get("draft"))
                    if draft is not None:
                        new_draft = draft
                elif isinstance(event, ModelError):
                    model_error = event
                elif isinstance(event, AgentCrash):
                    crash = event
        except StreamBroken:
            watchdog.cancel()
            await quiet.finish()
            if visible:
                await turn.out.send(Stream(stream_ref, visible, final=True))
            log.warning("agent stream broke", extra={"chat_id": turn.chat_id})
            project = await api.state(sid)
            summary = self._summary_or_empty(project.draft, lang)
            await turn.out.send(SendText(t("err_stream_broken", lang, summary=summary)))
            await self._remember_draft(turn, project.draft)
            return
        except asyncio.CancelledError:
            watchdog.cancel()
            await quiet.finish()
            if visible:
                stopped = visible + t("stopped_suffix", lang)
                await _safe_send(turn.out, Stream(stream_ref, stopped, final=True))
            raise
        finally:
            watchdog.cancel()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if self._metrics:
                self._metrics.streams_open.dec()
        await quiet.finish()
        if model_error is not None:
            log.warning(
                "agent model error",
                extra={"chat_id": turn.chat_id, "code": model_error.code},
            )
        if crash is not None:
            log.warning("agent crashed: %s", crash.message[:200], extra={"chat_id": turn.chat_id})

        if visible.strip():
            await self._finish_reply(turn, text, visible, stream_ref, new_draft)
        elif model_error is None and crash is None:
            await self._describe_turn(turn, before)
        if model_error is not None:
            await turn.out.send(SendText(t("err_model", lang, code=model_error.code or "?")))
        elif crash is not None:
            await turn.out.send(SendText(t("err_crash", lang)))

    async def _finish_reply(
        self,
        turn: _Turn,
        user_text: str,
        reply: str,
        ref: str,
        new_draft: dict[str, Any] | None,
    ) -> None:
        """The final text, with the agent's GUI talk turned into what this chat can do."""
        lang = turn.lang
        hint = read_agent_text(reply)
        extra = ""
        buttons: tuple[Button, ...] = ()
        auto_export = False
        if new_draft is not None:
            await self._remember_draft(turn, new_draft)
        if hint.action is GuiAction.EXPORT:
            if asks_for_export(user_text):
                auto_export = True
            else:
                extra = t("gui_export", lang)
                buttons = (self._button("export", lang),)
        elif hint.action is GuiAction.STATUS:
            api = await self._api(turn)
            project = await api.state(self._session_id(turn))
            await self._remember_draft(turn, project.draft)
            extra = t("gui_status", lang, summary=self._summary_or_empty(project.draft, lang))
            if is_exportable(project.draft):
                buttons = (self._button("export", lang),)
        elif new_draft is not None and is_exportable(new_draft):
            buttons = (self._button("export", lang), self._button("status", lang))
        final = reply.rstrip() + (f"\n\n{extra}" if extra else "")
        await turn.out.send(Stream(ref, final, final=True, buttons=buttons))
        if auto_export:
            await turn.out.send(SendText(t("auto_export", lang)))
            await self._export(turn)

    async def _describe_turn(self, turn: _Turn, before: Mapping[str, Any] | None) -> None:
        """A turn without text: read the project and say what changed."""
        api = await self._api(turn)
        project = await api.state(self._session_id(turn))
        change = describe_changes(before, project.draft, turn.lang)
        await self._remember_draft(turn, project.draft)
        buttons: tuple[Button, ...] = ()
        if is_exportable(project.draft):
            buttons = (self._button("export", turn.lang), self._button("status", turn.lang))
        if change:
            await turn.out.send(SendText(t("changes", turn.lang, changes=change), buttons=buttons))
        else:
            await turn.out.send(SendText(t("no_changes", turn.lang), buttons=buttons))

    def _summary_or_empty(self, draft: Mapping[str, Any] | None, lang: str) -> str:
        if not is_exportable(draft):
            return t("status_empty", lang).removeprefix("📋 ")
        return summarize_draft(draft, lang)

    def _quiet_s(self) -> float:
        return self._settings.quiet_notice_s

    # --- errors --------------------------------------------------------------------------

    async def _explain_error(self, turn: _Turn, exc: BaseException) -> None:
        """Each backend error as its own friendly, translated reply; anything else as an
        apology with a reference that is also in the log."""
        lang = turn.lang
        buttons: tuple[Button, ...] = ()
        kind = type(exc).__name__
        if isinstance(exc, TokenExpired):
            text = t("err_token_operator" if self._operator else "err_token", lang)
            log.warning("token refused", extra={"chat_id": turn.chat_id})
        elif isinstance(exc, OutOfCredits):
            link = exc.link or await self._claim_link(turn) or self._web_base
            if exc.anonymous and not self._operator:
                text = t("err_credits_anonymous", lang)
                buttons = (Button(t("btn_register", lang), url=link),)
            else:
                text = t("err_credits_registered", lang)
                buttons = (Button(t("btn_topup", lang), url=exc.link or self._web_base),)
            text = f"{text}\n{buttons[0].url}"
        elif isinstance(exc, UnsupportedFile):
            text = t("err_unsupported", lang, formats=_formats(exc.accepted or ACCEPTED_EXTENSIONS))
        elif isinstance(exc, FileTooLarge):
            text = t("err_too_large", lang, size=fmt_size(exc.size), limit=fmt_size(exc.limit))
        elif isinstance(exc, ExportBlocked):
            text = t("err_export_blocked", lang)
        elif isinstance(exc, RateLimited):
            seconds = round(exc.retry_after) if exc.retry_after else 30
            text = t("err_rate_limited", lang, seconds=seconds)
        elif isinstance(exc, StreamBroken | BackendUnavailable):
            text = t("err_unavailable", lang)
            log.warning("backend unavailable: %s", kind, extra={"chat_id": turn.chat_id})
        elif isinstance(exc, RenderFailed):
            text = _render_failed_text(exc.message, lang)
        elif isinstance(exc, SessionNotFound):
            try:
                await self._replace_session(turn)
                text = t("session_restarted", lang)
            except Exception as again:
                await self._reply_error(turn, again)
                return
        elif isinstance(exc, ProtocolError):
            ref = _ref()
            log.error(
                "backend answer not understood ref=%s: %s",
                ref,
                exc.message[:200],
                extra={"chat_id": turn.chat_id},
            )
            text = t("err_protocol", lang, ref=ref)
        else:
            ref = _ref()
            if isinstance(exc, MissingClientId | NemoError):
                log.error(
                    "backend refused ref=%s: %s %s",
                    ref,
                    kind,
                    exc.message[:200],
                    extra={"chat_id": turn.chat_id},
                )
            else:
                log.error(
                    "unhandled error ref=%s",
                    ref,
                    exc_info=(type(exc), exc, exc.__traceback__),
                    extra={"chat_id": turn.chat_id},
                )
            text = _apology(exc, lang, ref)
            kind = "store" if isinstance(exc, StoreUnavailable) else "unknown"
        if self._metrics:
            self._metrics.errors.labels(kind).inc()
        await _safe_send(turn.out, SendText(text, buttons=buttons))

    async def _claim_link(self, turn: _Turn) -> str | None:
        """A browser link that keeps the anonymous user's project when they register."""
        state = turn.state
        if state.task_id is None or state.session_id is None or turn.api is None:
            return None
        try:
            return await turn.api.claim_link(state.task_id, state.session_id)
        except NemoError as exc:
            log.warning("claim link unavailable: %s", type(exc).__name__)
            return None

    # --- state ---------------------------------------------------------------------------

    def _lang(self, state: ChatState, msg: Inbound | None) -> str:
        if msg is None:
            return state.lang or "en"
        return pick_lang(
            stored=state.lang,
            locked=state.lang_locked,
            language_code=msg.language_code,
            text=msg.text,
        )

    async def _persist_lang(self, turn: _Turn) -> None:
        if turn.state.lang != turn.lang:
            lang = turn.lang

            def apply(s: ChatState) -> None:
                if not s.lang_locked:
                    s.lang = lang

            await self._update(turn, apply)

    async def _update(self, turn: _Turn, change: Callable[[ChatState], None]) -> ChatState:
        """Read, change and write the chat's state; serialised within this process so a
        job and a control message never overwrite each other's fields."""
        async with turn.rt.state_lock:
            state = await self._store.load(turn.chat_id)
            change(state)
            await self._store.save(state)
        turn.state = state
        return state

    async def _remember_draft(self, turn: _Turn, draft: Mapping[str, Any] | None) -> None:
        value = draft_of(draft)

        def apply(s: ChatState) -> None:
            s.last_draft = value

        await self._update(turn, apply)

    # --- small things --------------------------------------------------------------------

    def _button(self, action: str, lang: str) -> Button:
        return Button(t(f"btn_{action}", lang), data=f"a:{action}")

    def _menu(self, turn: _Turn) -> tuple[Button, ...]:
        return (self._button("status", turn.lang), self._button("credits", turn.lang))

    def _count(self, intent: str) -> None:
        if self._metrics:
            self._metrics.updates.labels(intent).inc()


class _Quiet:
    """The "⏳ Still working…" notice: one message, updated each quiet period, plus the
    tool-call hints and the typing indicator while the agent works."""

    def __init__(self, *, out: Outbox, lang: str, ref: str, every: float) -> None:
        self.out = out
        self.lang = lang
        self.ref = ref
        self.every = every
        self.started = time.monotonic()
        self.last = self.started
        self.shown = False

    def touch(self) -> None:
        self.last = time.monotonic()

    async def show(self, text: str) -> None:
        self.shown = True
        await _safe_send(self.out, Progress(self.ref, text))

    async def finish(self) -> None:
        if self.shown:
            self.shown = False
            await _safe_send(self.out, Progress(self.ref, t("progress_done", self.lang), done=True))

    async def watch(self) -> None:
        next_action = time.monotonic() + _CHAT_ACTION_EVERY_S
        while True:
            now = time.monotonic()
            due = self.last + self.every
            if now >= due:
                elapsed = fmt_elapsed(now - self.started)
                await self.show(t("still_working", self.lang, elapsed=elapsed))
                self.last = now
                continue
            if now >= next_action:
                await _safe_send(self.out, ChatAction("typing"))
                next_action = now + _CHAT_ACTION_EVERY_S
            await asyncio.sleep(max(0.01, min(due, next_action) - now))


_NO_PENDING = PendingExport(render_id="", started_at=0.0)


def _apology(exc: BaseException, lang: str, ref: str) -> str:
    """The reply to a failure nobody planned for; the store being down has its own words."""
    return t("err_store" if isinstance(exc, StoreUnavailable) else "err_unknown", lang, ref=ref)


def intent_of(msg: Inbound) -> str:
    """What a message asks for, as one word for the log line."""
    if msg.callback_data is not None:
        return f"button:{button_action(msg.callback_data) or 'unknown'}"
    if msg.attachments:
        return "files"
    command = command_of(msg.text)
    if command is not None:
        return f"/{command[0]}"
    return classify(msg.text).intent.value if msg.text.strip() else "empty"


def _fallback_lang(msg: Inbound | None) -> str:
    """The language to apologise in when the chat's state cannot be read."""
    if msg is None:
        return "en"
    return pick_lang(stored=None, locked=False, language_code=msg.language_code, text=msg.text)


def _finish(entry: _Entry) -> None:
    if entry.done is not None and not entry.done.done():
        entry.done.set_result(None)


def _release(rt: _ChatRuntime) -> list[_Entry]:
    """Let every `handle` still waiting here return; their messages stay in the inbox."""
    waiting = [e for e in rt.waiters.values() if e.done is not None and not e.done.done()]
    for entry in waiting:
        _finish(entry)
    return waiting


async def _close_owned(entry: _Entry) -> None:
    """Close an outbox made for one job (a front end's may hold a typing indicator)."""
    close = getattr(entry.out, "close", None) if entry.owned else None
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


class _Nowhere:
    """The outbox of last resort, when no front end was attached."""

    async def send(self, op: Outbound) -> None:
        log.warning("answer dropped: no front end attached (%s)", type(op).__name__)


_NOWHERE = _Nowhere()
_OTHER_JOB = _Entry(out=_NOWHERE, label="job_other")


def _drop_pending(state: ChatState, render_ids: set[str]) -> None:
    state.pending = [p for p in state.pending if p.render_id not in render_ids]


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


def _job_text(entry: _Entry | None, lang: str) -> str:
    if entry is None:
        return t("job_other", lang)
    if entry.label == "job_chat":
        return t("job_chat", lang, snippet=entry.snippet)
    return t(entry.label, lang)


def _render_failed_text(message: str | None, lang: str) -> str:
    detail = ""
    if message and not message.lstrip().startswith(("{", "[", "<")):
        detail = f" ({snippet(message, 120)})" if lang == "en" else f"（{snippet(message, 120)}）"
    return t("render_failed", lang, detail=detail)


def _formats(extensions: Sequence[str]) -> str:
    return " ".join(e.lstrip(".") for e in extensions)


def _mb(size: int) -> str:
    return f"{size / MIB:g}"


def _kind_word(file_type: str) -> str | None:
    low = file_type.lower()
    for word in ("image", "video", "audio"):
        if word in low:
            return word
    return None


def _kind_of_name(name: str, mime: str | None) -> str:
    guess = _kind_word(mime or "")
    if guess:
        return guess
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in ("jpg", "jpeg", "png", "gif", "webp", "heic"):
        return "image"
    if ext in ("mp3", "wav", "m4a", "aac"):
        return "audio"
    if ext in ("mp4", "mov", "avi", "webm", "mkv"):
        return "video"
    return "other"


def _ref(prefix: str = "") -> str:
    """A short reference: error numbers users can quote, and op refs for front ends."""
    token = secrets.token_hex(4)
    return f"{prefix}-{token}" if prefix else token.upper()[:6]


async def _safe_send(out: Outbox, op: Any) -> None:
    """Send without letting a failing front end turn an answer into a crash."""
    try:
        await out.send(op)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("front end failed to send %s", type(op).__name__, exc_info=True)
