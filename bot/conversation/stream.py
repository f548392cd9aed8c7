"""The agent's stream: its answer streamed into one message, tool hints and a "still working"
notice while it is quiet, and what the answer leads to (buttons, a change summary, an export)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backend import (
    AgentCrash,
    ModelError,
    ProjectState,
    StateDelta,
    StreamBroken,
    TextDelta,
    ToolCall,
    TurnComplete,
    describe_changes,
    is_exportable,
    summarize_draft,
)
from backend.events import announced_by_agent
from bot.conversation.export import Exports
from bot.conversation.gui import marked_words, rewrite_gui
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn, new_ref, safe_send
from bot.conversation.text import asks_for_export, button, draft_of, tool_hint
from bot.io import Button, ChatAction, Outbox, Progress, SendText, Stream
from bot.ops.metrics import Metrics
from bot.texts import base_lang, fmt_elapsed, localize, t
from router import GuiAction, read_agent_text

__all__ = ["AgentChat"]

log = logging.getLogger("bot.conversation")

_CHAT_ACTION_EVERY_S = 4.5
# How each front end asks for an export: a button in Telegram, a command in the terminal.
_EXPORT_HINTS = {"telegram": "gui_export", "terminal": "gui_export_terminal"}

# A cancelled answer's report waits this long for the project's state, then goes without.
_STOPPED_STATE_WAIT_S = 5.0


@dataclass(eq=False)
class AgentChat:
    """Chat with the agent. An answer may start an export; after `quiet_s` without news
    the user is told the agent still works. `front` (telegram, terminal) words what the
    agent says of its web editor the way that front end works."""

    sessions: Sessions
    states: ChatStates
    exports: Exports
    metrics: Metrics
    quiet_s: float
    front: str = "telegram"

    async def chat(self, turn: Turn, text: str) -> None:
        """Stream the agent's answer into one message, with progress for tools and quiet."""
        api = await self.sessions.api(turn)
        sid = session_id(turn)
        lang = turn.lang
        before = turn.state.last_draft
        stream_ref = new_ref("reply")
        quiet = _Quiet(out=turn.out, lang=lang, ref=new_ref("work"), every=self.quiet_s)
        visible = ""
        new_draft: dict[str, Any] | None = None
        model_error: ModelError | None = None
        crash: AgentCrash | None = None
        complete = False
        await turn.out.send(ChatAction("typing"))
        watchdog = asyncio.create_task(quiet.watch())
        await turn.sending()
        self.metrics.streams_open.inc()
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
                elif isinstance(event, TurnComplete):
                    complete = announced_by_agent(event)
        except StreamBroken:
            watchdog.cancel()
            await quiet.finish()
            if visible:
                await turn.out.send(Stream(stream_ref, visible, final=True))
            log.warning("agent stream broke", extra={"chat_id": turn.chat_id})
            project = await api.state(sid)
            summary = _summary_or_empty(project.draft, lang)
            await turn.out.send(SendText(t("err_stream_broken", lang, summary=summary)))
            await self.states.remember_draft(turn, project.draft)
            return
        except asyncio.CancelledError:
            watchdog.cancel()
            await quiet.finish()
            if visible:
                stopped = visible + t("stopped_suffix", lang)
                await safe_send(turn.out, Stream(stream_ref, stopped, final=True))
            raise
        finally:
            watchdog.cancel()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self.metrics.streams_open.dec()
        await quiet.finish()
        if model_error is not None:
            log.warning(
                "agent model error",
                extra={"chat_id": turn.chat_id, "code": model_error.code},
            )
        if crash is not None:
            log.warning("agent crashed: %s", crash.message[:200], extra={"chat_id": turn.chat_id})

        if not complete and model_error is None and crash is None:
            # Closed cleanly, but the agent never said it was done: the answer was cut.
            log.warning(
                "agent stream closed before the turn completed", extra={"chat_id": turn.chat_id}
            )
            if visible:
                await turn.out.send(Stream(stream_ref, visible, final=True))
            await self._describe_cut(turn, before)
            return
        if visible.strip():
            await self._finish_reply(turn, text, visible, stream_ref, new_draft)
        elif model_error is None and crash is None:
            await self._describe_turn(turn, before)
        if model_error is not None:
            await turn.out.send(SendText(t("err_model", lang, code=model_error.code or "?")))
        elif crash is not None:
            await turn.out.send(SendText(t("err_crash", lang)))

    async def stopped(self, turn: Turn) -> None:
        """After a /cancel cut the answer short: the agent may still finish the edit on the
        server (and charge it), so say so, with the project as it stands now."""
        text = t("stopped_chat", turn.lang)
        try:
            api = await self.sessions.api(turn)
            project = await asyncio.wait_for(
                api.state(session_id(turn)), timeout=_STOPPED_STATE_WAIT_S
            )
        except Exception:  # the report goes without the project: /status will tell
            log.info("project state unread after a cancel", extra={"chat_id": turn.chat_id})
        else:
            now = t("project_now", turn.lang, summary=_summary_or_empty(project.draft, turn.lang))
            text = f"{text}\n\n{now}"
        await safe_send(turn.out, SendText(text))

    async def _finish_reply(
        self,
        turn: Turn,
        user_text: str,
        reply: str,
        ref: str,
        new_draft: dict[str, Any] | None,
    ) -> None:
        """The final text, with the agent's GUI talk rewritten in place into what this chat
        can do; the user's own words it quotes stay as typed."""
        lang = turn.lang
        hint = read_agent_text(reply)
        final = reply.rstrip()
        buttons: tuple[Button, ...] = ()
        auto_export = False
        if new_draft is not None:
            await self.states.remember_draft(turn, new_draft)
        if hint.action is GuiAction.EXPORT:
            auto_export = asks_for_export(user_text)
            key = "auto_export" if auto_export else _EXPORT_HINTS.get(self.front, "gui_export")
            instead = t(key, lang)
            final = rewrite_gui(final, GuiAction.EXPORT, instead)
            buttons = () if auto_export else (button("export", lang),)
        elif hint.action is GuiAction.STATUS:
            api = await self.sessions.api(turn)
            project = await api.state(session_id(turn))
            await self.states.remember_draft(turn, project.draft)
            summary = t("gui_status", lang, summary=_summary_or_empty(project.draft, lang))
            final = rewrite_gui(final, GuiAction.STATUS, summary)
            if is_exportable(project.draft):
                buttons = (button("export", lang),)
        elif new_draft is not None and is_exportable(new_draft):
            buttons = (button("export", lang), button("status", lang))
        literal = marked_words(user_text)
        await turn.out.send(Stream(ref, final, final=True, buttons=buttons, literal=literal))
        if auto_export:
            await self.exports.start(turn)

    async def _changes_since(
        self, turn: Turn, before: Mapping[str, Any] | None
    ) -> tuple[ProjectState, str | None]:
        """The project as it is now, and what changed since `before` in the chat's words."""
        api = await self.sessions.api(turn)
        project = await api.state(session_id(turn))
        change = describe_changes(before, project.draft, base_lang(turn.lang))
        await self.states.remember_draft(turn, project.draft)
        return project, localize(change, turn.lang) if change else None

    async def _describe_turn(self, turn: Turn, before: Mapping[str, Any] | None) -> None:
        """A turn without text: read the project and say what changed."""
        project, change = await self._changes_since(turn, before)
        buttons: tuple[Button, ...] = ()
        if is_exportable(project.draft):
            buttons = (button("export", turn.lang), button("status", turn.lang))
        if change:
            await turn.out.send(SendText(t("changes", turn.lang, changes=change), buttons=buttons))
        else:
            await turn.out.send(SendText(t("no_changes", turn.lang), buttons=buttons))

    async def _describe_cut(self, turn: Turn, before: Mapping[str, Any] | None) -> None:
        """An answer cut short: read the project and say what changed."""
        _, change = await self._changes_since(turn, before)
        if change:
            await turn.out.send(SendText(t("err_stream_cut", turn.lang, changes=change)))
        else:
            await turn.out.send(SendText(t("err_stream_cut_unchanged", turn.lang)))


def _summary_or_empty(draft: Mapping[str, Any] | None, lang: str) -> str:
    if not is_exportable(draft):
        return t("status_empty", lang).removeprefix("📋 ")
    return localize(summarize_draft(draft, base_lang(lang)), lang)


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
        await safe_send(self.out, Progress(self.ref, text))

    async def finish(self) -> None:
        if self.shown:
            self.shown = False
            await safe_send(self.out, Progress(self.ref, t("progress_done", self.lang), done=True))

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
                await safe_send(self.out, ChatAction("typing"))
                next_action = now + _CHAT_ACTION_EVERY_S
            await asyncio.sleep(max(0.01, min(due, next_action) - now))
