"""Exports: a render started from the project and followed to its video (or its failure,
cancellation or deadline), including renders a stopped process left in the store."""

from __future__ import annotations

import asyncio
import logging
import time

from backend import BackendUnavailable, NemoApi, NemoError, RateLimited, RenderStatus, is_exportable
from bot.conversation.errors import render_failed_text
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn, new_ref, safe_send
from bot.conversation.text import button
from bot.io import ChatAction, Progress, SendText, SendVideo
from bot.ops.metrics import Metrics
from bot.settings import Settings
from bot.store import PendingExport
from bot.texts import fmt_elapsed, fmt_span, t

__all__ = ["Exports"]

log = logging.getLogger("bot.conversation")


class Exports:
    """Export and its follow-up, polled every `EXPORT_POLL_INTERVAL_S` until
    `EXPORT_DEADLINE_S`."""

    def __init__(
        self, sessions: Sessions, states: ChatStates, settings: Settings, metrics: Metrics
    ) -> None:
        self._sessions = sessions
        self._states = states
        self._settings = settings
        self._metrics = metrics

    async def start(self, turn: Turn) -> None:
        """Render the project and follow the render to its video."""
        api = await self._sessions.api(turn)
        sid = session_id(turn)
        project = await api.state(sid)
        await self._states.remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("nothing_to_export", turn.lang)))
            return
        ref = new_ref("export")
        await turn.out.send(
            Progress(ref, t("export_progress", turn.lang, percent=0, elapsed=fmt_elapsed(0)))
        )
        await turn.out.send(ChatAction("upload_video"))
        await turn.sending()
        job = await api.start_export(sid, project.draft)
        pending = PendingExport(
            render_id=job.id, started_at=time.time(), lang=turn.lang, progress_ref=ref
        )
        await self._states.add_pending(turn, pending)
        log.info("export started", extra={"chat_id": turn.chat_id, "render_id": job.id})
        await self._follow(turn, pending)

    async def resume(self, turn: Turn, pending: PendingExport) -> None:
        """Follow a render a stopped process left, unless it ended meanwhile."""
        state = await self._states.store.load(turn.chat_id)
        turn.state = state
        if not any(p.render_id == pending.render_id for p in state.pending):
            return  # delivered or cancelled meanwhile (e.g. by another replica)
        await self._follow(turn, pending)

    async def cancel_stored(self, turn: Turn) -> bool:
        """Stop the renders in the chat's state that no job here follows (another process's,
        or a crashed one's); False when there are none."""
        state = await self._states.store.load(turn.chat_id)
        if not state.pending:
            return False
        turn.state = state
        api = await self._sessions.api(turn)
        for pending in state.pending:
            await self._cancel_render(api, turn, pending.render_id)
            await self._end(turn, pending.render_id, "cancelled")
        return True

    async def _follow(self, turn: Turn, pending: PendingExport) -> None:
        """Poll the render until it is done, failed, cancelled or past the deadline."""
        api = await self._sessions.api(turn)
        lang = turn.lang
        ref = pending.progress_ref or new_ref("export")
        render_id = pending.render_id
        deadline = pending.started_at + self._settings.export_deadline_s
        interval = self._settings.export_poll_interval_s
        shown = t("export_progress", lang, percent=0, elapsed=fmt_elapsed(0))
        percent = 0
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
                # Whoever removes the export from the store tells how it ended, and only
                # then: a video is never sent twice, however often the export is resumed.
                # Closing the progress line is an edit, harmless to repeat.
                if job is not None and job.status is RenderStatus.COMPLETED and job.url:
                    done = t("export_done", lang, elapsed=elapsed)
                    if await self._end(turn, render_id, "completed"):
                        await turn.out.send(Progress(ref, done, done=True))
                        await turn.out.send(
                            SendVideo(
                                url=job.url,
                                caption=t("export_caption", lang),
                                buttons=(button("new", lang), button("credits", lang)),
                            )
                        )
                    return
                if job is not None and job.status is RenderStatus.FAILED:
                    await turn.out.send(Progress(ref, t("export_failed_line", lang), done=True))
                    if await self._end(turn, render_id, "failed"):
                        await turn.out.send(SendText(render_failed_text(job.error, lang)))
                    return
                if job is not None and job.status is RenderStatus.CANCELLED:
                    await turn.out.send(Progress(ref, t("export_stopped_line", lang), done=True))
                    if await self._end(turn, render_id, "cancelled"):
                        await turn.out.send(SendText(t("export_cancelled_remote", lang)))
                    return
                now = time.time()
                if now >= deadline:
                    await self._cancel_render(api, turn, render_id)
                    await turn.out.send(Progress(ref, t("export_timeout_line", lang), done=True))
                    if await self._end(turn, render_id, "deadline"):
                        await turn.out.send(SendText(self._deadline_text(lang)))
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
                if await self._end(turn, render_id, "cancelled"):
                    stopped = t("export_stopped_line", lang)
                    await safe_send(turn.out, Progress(ref, stopped, done=True))
                    await safe_send(turn.out, SendText(t("export_cancelled", lang)))
                    turn.rt.cancel_reported = True
            raise
        finally:
            self._metrics.exports_pending.dec()

    async def _cancel_render(self, api: NemoApi, turn: Turn, render_id: str) -> None:
        try:
            await api.cancel_export(render_id)
            log.info("render cancelled", extra={"chat_id": turn.chat_id, "render_id": render_id})
        except NemoError as exc:
            log.warning(
                "render cancel failed: %s",
                type(exc).__name__,
                extra={"chat_id": turn.chat_id, "render_id": render_id},
            )

    def _deadline_text(self, lang: str) -> str:
        duration = fmt_span(self._settings.export_deadline_s, lang)
        return t("export_deadline", lang, duration=duration)

    async def _end(self, turn: Turn, render_id: str, outcome: str) -> bool:
        """Remove the export from the store; False when another job did (and told) it."""
        if not await self._states.claim_pending(turn, render_id):
            log.info(
                "export ended elsewhere",
                extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
            )
            return False
        log.info(
            "export finished",
            extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
        )
        self._metrics.exports.labels(outcome).inc()
        return True
