"""What a message asks for, done: control messages (/cancel, /credits, /status, /help,
/lang), commands, files, and texts routed to a direct action or to the agent."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from backend import is_exportable, summarize_draft
from bot.conversation.errors import ErrorReplies
from bot.conversation.export import Exports
from bot.conversation.files import Uploads
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn, safe_send
from bot.conversation.stream import AgentChat
from bot.conversation.text import button, command_of, is_cancel_word, menu
from bot.io import Inbound, Outbox, SendText, button_action
from bot.ops.metrics import Metrics
from bot.texts import base_lang, localize, normalize_lang, t
from router import ExportOptions, Intent, classify

__all__ = ["Actions"]

log = logging.getLogger("bot.conversation")

_CANCEL_WAIT_S = 15.0

# What /lang takes besides language codes: names of the languages, as people write them.
_LANG_WORDS = {
    **dict.fromkeys(("en", "english", "英文", "英语", "英語"), "en"),
    **dict.fromkeys(
        (
            "cn",
            "chinese",
            "simplified",
            "中文",
            "汉语",
            "漢語",
            "简体",
            "簡體",
            "简体中文",
            "簡體中文",
        ),
        "zh",
    ),
    **dict.fromkeys(("tw", "hk", "traditional", "繁体", "繁體", "繁体中文", "繁體中文"), "zh-hant"),
}


@dataclass(eq=False)
class Actions:
    """Control messages, jobs and direct actions, each handed to the part that does it.
    `owner` is this process's name on the chat locks (a /cancel looks whether another
    process holds the chat)."""

    states: ChatStates
    sessions: Sessions
    exports: Exports
    uploads: Uploads
    agent: AgentChat
    errors: ErrorReplies
    metrics: Metrics
    owner: str

    async def control(self, msg: Inbound, out: Outbox) -> str:
        """A message answered at once, whatever job the chat runs: `ok`, or `error` when
        the answer was an error reply."""
        turn = await self.states.turn(msg.chat_id, out, msg)
        try:
            action = button_action(msg.callback_data)
            cmd = command_of(msg.text)
            name = action or (cmd[0] if cmd else "")
            if not name and is_cancel_word(msg.text):
                name = "cancel"
            if not name:
                intent = classify(msg.text).intent
                name = "credits" if intent is Intent.CREDITS else "status"
            self._count(name)
            if name == "cancel":
                await self._cancel(turn)
            elif name == "credits":
                await self._credits(turn)
            elif name == "status":
                await self.sessions.run(turn, lambda: self._status(turn), retry=False)
            elif name == "help":
                await out.send(SendText(t("help", turn.lang)))
            elif name == "lang":
                await self._set_lang(turn, cmd[1] if cmd else "")
        except Exception as exc:
            await self.errors.reply(turn, exc)
        finally:
            self.states.release_if_idle(msg.chat_id)
        return "error" if turn.failed else "ok"

    async def _cancel(self, turn: Turn) -> None:
        rt = turn.rt
        running = rt.current
        if running is not None and not running.done():
            rt.cancel_requested = True
            running.cancel()
            await asyncio.wait({running}, timeout=_CANCEL_WAIT_S)
            return
        if await self.exports.cancel_stored(turn):
            await turn.out.send(SendText(t("export_cancelled", turn.lang)))
            return
        # Only read who holds the chat: taking its lock, even for a moment, could turn
        # away the process about to run the chat's next message.
        holder = await self.states.store.lock_holder(turn.chat_id)
        if holder is None or holder == self.owner:
            await turn.out.send(SendText(t("nothing_to_cancel", turn.lang)))
        else:  # another replica holds the chat's job; it cannot be reached from here
            await turn.out.send(SendText(t("cancel_elsewhere", turn.lang)))

    async def stopped(self, turn: Turn, label: str) -> None:
        """What a /cancel did to a job that had nothing else to say about it."""
        if label == "job_chat":
            await self.agent.stopped(turn)
        else:
            await safe_send(turn.out, SendText(t("stopped", turn.lang)))

    async def _set_lang(self, turn: Turn, arg: str) -> None:
        choice = arg.strip().lower().replace("_", "-")
        if choice in _LANG_WORDS:
            lang, locked = _LANG_WORDS[choice], True
        elif re.fullmatch(r"zh(-[a-z]+)*", choice):  # zh-CN, zh-Hans, zh-TW, zh-Hant-HK …
            lang, locked = normalize_lang(choice), True
        elif choice == "auto":
            lang, locked = turn.lang, False
        else:
            await turn.out.send(SendText(t("lang_usage", turn.lang)))
            return
        await self.states.set_lang(turn, lang, locked=locked)
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
            await self.sessions.new_project(turn)
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
                uploaded.append(await self.uploads.files(turn, msg.attachments, bool(text)))

            await self.sessions.run(turn, upload, retry=True)
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
                await self.sessions.ensure(turn, welcome=True)
            else:
                await turn.out.send(SendText(t("welcome_back", turn.lang)))
                await turn.out.send(SendText(t("welcome", turn.lang), buttons=menu(turn.lang)))
        elif name == "new":
            await self.sessions.new_project(turn)
        elif name == "export":
            asked = classify(f"export {arg}") if arg else None
            options = asked.options if asked and asked.intent is Intent.EXPORT else None
            await self._export(turn, options)
        elif name == "upload":
            words = arg.split()
            urls = tuple(w for w in words if w.startswith(("http://", "https://")))
            rest = " ".join(w for w in words if w not in urls)
            await self._upload_urls(turn, urls, bool(rest))
            if urls and rest:  # `/upload URL animate it`: the words are a message too
                await self._text(turn, rest)
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
            await self.sessions.run(turn, lambda: self._status(turn), retry=False)
        elif decision.intent is Intent.UPLOAD:
            await self._upload_urls(turn, decision.urls)
        else:
            await self.sessions.run(turn, lambda: self.agent.chat(turn, text), retry=True)

    # --- direct actions ------------------------------------------------------------------

    async def _export(self, turn: Turn, options: ExportOptions | None = None) -> None:
        await self.sessions.run(turn, lambda: self.exports.start(turn, options), retry=False)

    async def _upload_urls(self, turn: Turn, urls: tuple[str, ...], more: bool = False) -> None:
        if not urls:
            await self.uploads.ask(turn)
            return
        await self.sessions.run(turn, lambda: self.uploads.urls(turn, urls, more), retry=True)

    async def _credits(self, turn: Turn) -> None:
        api = await self.sessions.api(turn)
        c = await api.credits()
        await turn.out.send(
            SendText(t("credits", turn.lang, available=c.available, frozen=c.frozen, total=c.total))
        )

    async def _status(self, turn: Turn) -> None:
        api = await self.sessions.api(turn)
        project = await api.state(session_id(turn))
        await self.states.remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("status_empty", turn.lang)))
            return
        summary = localize(summarize_draft(project.draft, base_lang(turn.lang)), turn.lang)
        text = f"{t('status', turn.lang, summary=summary)}\n\n{t('status_hint', turn.lang)}"
        buttons = (button("export", turn.lang),)
        await turn.out.send(SendText(text, buttons, timeline=project.draft, lang=turn.lang))

    def _count(self, intent: str) -> None:
        self.metrics.updates.labels(intent).inc()
