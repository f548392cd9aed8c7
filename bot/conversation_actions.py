"""What a message asks for, done: control messages (/cancel, /credits, /status, /help,
/lang), commands, files, and texts routed to a direct action or to the agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from backend import NemoError, SessionNotFound, is_exportable, summarize_draft
from bot.conversation_errors import ErrorReplies
from bot.conversation_export import drop_pending
from bot.conversation_files import FileUploads
from bot.conversation_state import Turn
from bot.conversation_stream import AgentStream
from bot.conversation_text import command_of
from bot.io import Inbound, Outbox, SendText, button_action
from bot.store import ChatState
from bot.texts import t
from router import Intent, classify

__all__ = ["Actions"]

# Every part of the conversation logs under one name, so its lines are found together.
log = logging.getLogger("bot.conversation")

_CANCEL_WAIT_S = 15.0


class Actions(AgentStream, FileUploads, ErrorReplies):
    """Control messages, jobs and direct actions. Needs every kind of work a message can
    ask for, and this process's name on the chat locks (a /cancel probes whether another
    process holds the chat)."""

    _owner: str

    # --- control messages ----------------------------------------------------------------

    async def _run_control(self, msg: Inbound, out: Outbox) -> None:
        state = await self._store.load(msg.chat_id)
        turn = Turn(
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

    async def _cancel(self, turn: Turn) -> None:
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
        await self._update(turn, lambda s: drop_pending(s, ids))
        await turn.out.send(SendText(t("export_cancelled", turn.lang)))

    async def _set_lang(self, turn: Turn, arg: str) -> None:
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

    async def _job(self, turn: Turn, msg: Inbound) -> None:
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

    async def _command(self, turn: Turn, name: str, arg: str) -> None:
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

    async def _text(self, turn: Turn, text: str) -> None:
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
        self, turn: Turn, action: Callable[[], Awaitable[None]], *, retry: bool
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

    # --- direct actions ------------------------------------------------------------------

    async def _credits(self, turn: Turn) -> None:
        api = await self._api(turn)
        c = await api.credits()
        await turn.out.send(
            SendText(t("credits", turn.lang, available=c.available, frozen=c.frozen, total=c.total))
        )

    async def _status(self, turn: Turn) -> None:
        api = await self._api(turn)
        project = await api.state(self._session_id(turn))
        await self._remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("status_empty", turn.lang)))
            return
        summary = summarize_draft(project.draft, turn.lang)
        text = f"{t('status', turn.lang, summary=summary)}\n\n{t('status_hint', turn.lang)}"
        await turn.out.send(SendText(text, buttons=(self._button("export", turn.lang),)))
