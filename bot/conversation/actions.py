"""What a message asks for, done: control messages (/cancel, /credits, /status, /help,
/lang), commands, files, and texts routed to a direct action or to the agent."""

from __future__ import annotations

import asyncio
import logging

from backend import is_exportable, summarize_draft
from bot.conversation.errors import ErrorReplies
from bot.conversation.export import Exports
from bot.conversation.files import Uploads
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn
from bot.conversation.stream import AgentChat
from bot.conversation.text import button, command_of, menu
from bot.io import Inbound, Outbox, SendText, button_action
from bot.ops.metrics import Metrics
from bot.store import ChatState
from bot.texts import t
from router import ExportOptions, Intent, classify

__all__ = ["Actions"]

log = logging.getLogger("bot.conversation")

_CANCEL_WAIT_S = 15.0


class Actions:
    """Control messages, jobs and direct actions, each handed to the part that does it.
    `owner` is this process's name on the chat locks (a /cancel looks whether another
    process holds the chat)."""

    def __init__(
        self,
        *,
        states: ChatStates,
        sessions: Sessions,
        exports: Exports,
        uploads: Uploads,
        agent: AgentChat,
        errors: ErrorReplies,
        metrics: Metrics,
        owner: str,
    ) -> None:
        self._states = states
        self._sessions = sessions
        self._exports = exports
        self._uploads = uploads
        self._agent = agent
        self._errors = errors
        self._metrics = metrics
        self._owner = owner

    # --- control messages ----------------------------------------------------------------

    async def control(self, msg: Inbound, out: Outbox) -> None:
        """A message answered at once, whatever job the chat runs."""
        turn = await self._states.turn(msg.chat_id, out, msg)
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
                await self._sessions.run(turn, lambda: self._status(turn), retry=False)
            elif name == "help":
                await out.send(SendText(t("help", turn.lang)))
            elif name == "lang":
                await self._set_lang(turn, cmd[1] if cmd else "")
        except Exception as exc:
            await self._errors.reply(turn, exc)

    async def _cancel(self, turn: Turn) -> None:
        rt = turn.rt
        running = rt.current
        if running is not None and not running.done():
            rt.cancel_requested = True
            running.cancel()
            await asyncio.wait({running}, timeout=_CANCEL_WAIT_S)
            return
        if await self._exports.cancel_stored(turn):
            await turn.out.send(SendText(t("export_cancelled", turn.lang)))
            return
        store = self._states.store
        probe = f"{self._owner}:probe"
        if await store.try_lock(turn.chat_id, probe, 1.0):
            await store.unlock(turn.chat_id, probe)
            await turn.out.send(SendText(t("nothing_to_cancel", turn.lang)))
        else:  # another replica holds the chat's job; it cannot be reached from here
            await turn.out.send(SendText(t("cancel_elsewhere", turn.lang)))

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

        await self._states.update(turn, apply)
        turn.lang = lang
        await turn.out.send(SendText(t("lang_set" if locked else "lang_auto", lang)))

    # --- jobs ----------------------------------------------------------------------------

    async def job(self, turn: Turn, msg: Inbound) -> None:
        """A message run in its turn in the chat's queue."""
        action = button_action(msg.callback_data)
        if action == "export":
            self._count("export")
            await self._export(turn)
            return
        if action == "new":
            self._count("new")
            await self._sessions.new_project(turn)
            return
        cmd = command_of(msg.text)
        if cmd is not None and not msg.attachments:
            await self._command(turn, cmd[0], cmd[1])
            return
        text = msg.text.strip()
        if msg.attachments:
            self._count("files")
            uploaded: list[bool] = []

            async def upload() -> None:
                uploaded.append(await self._uploads.files(turn, msg.attachments, bool(text)))

            await self._sessions.run(turn, upload, retry=True)
            if cmd is not None:
                await self._command(turn, cmd[0], cmd[1])
                return
            # Words sent with files that were all refused are about those files: the agent
            # would spend credits making something without them.
            if not text or not any(uploaded):
                return
        await self._text(turn, text)

    async def _command(self, turn: Turn, name: str, arg: str) -> None:
        self._count(name if name in ("start", "new", "export") else "other_command")
        if name == "start":
            if turn.state.session_id is None:
                await self._sessions.ensure(turn, welcome=True)
            else:
                await turn.out.send(SendText(t("welcome_back", turn.lang)))
                await turn.out.send(SendText(t("welcome", turn.lang), buttons=menu(turn.lang)))
        elif name == "new":
            await self._sessions.new_project(turn)
        elif name == "export":
            asked = classify(f"export {arg}") if arg else None
            options = asked.options if asked and asked.intent is Intent.EXPORT else None
            await self._export(turn, options)
        elif name == "upload":
            urls = tuple(w for w in arg.split() if w.startswith(("http://", "https://")))
            await self._upload_urls(turn, urls)
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
            await self._export(turn, decision.options)
        elif decision.intent is Intent.CREDITS:
            await self._credits(turn)
        elif decision.intent is Intent.STATUS:
            await self._sessions.run(turn, lambda: self._status(turn), retry=False)
        elif decision.intent is Intent.UPLOAD:
            await self._upload_urls(turn, decision.urls)
        else:
            await self._sessions.run(turn, lambda: self._agent.chat(turn, text), retry=True)

    # --- direct actions ------------------------------------------------------------------

    async def _export(self, turn: Turn, options: ExportOptions | None = None) -> None:
        await self._sessions.run(turn, lambda: self._exports.start(turn, options), retry=False)

    async def _upload_urls(self, turn: Turn, urls: tuple[str, ...]) -> None:
        if not urls:
            await self._uploads.ask(turn)
            return
        await self._sessions.run(turn, lambda: self._uploads.urls(turn, urls), retry=True)

    async def _credits(self, turn: Turn) -> None:
        api = await self._sessions.api(turn)
        c = await api.credits()
        await turn.out.send(
            SendText(t("credits", turn.lang, available=c.available, frozen=c.frozen, total=c.total))
        )

    async def _status(self, turn: Turn) -> None:
        api = await self._sessions.api(turn)
        project = await api.state(session_id(turn))
        await self._states.remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("status_empty", turn.lang)))
            return
        summary = summarize_draft(project.draft, turn.lang)
        text = f"{t('status', turn.lang, summary=summary)}\n\n{t('status_hint', turn.lang)}"
        buttons = (button("export", turn.lang),)
        await turn.out.send(SendText(text, buttons, timeline=project.draft, lang=turn.lang))

    def _count(self, intent: str) -> None:
        self._metrics.updates.labels(intent).inc()
