"""Exports: a render started from the project and followed to its video (or its failure,
cancellation or deadline), including renders a stopped process left in the store."""

from __future__ import annotations

import asyncio
import logging
import time

from backend import (
    BackendUnavailable,
    NemoApi,
    NemoError,
    RateLimited,
    RenderStatus,
    is_exportable,
)
from bot.conversation.errors import render_failed_text
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn, new_ref, safe_send
from bot.conversation.text import button, export_notes
from bot.io import ChatAction, DeliveryFailed, Progress, SendText, SendVideo
from bot.ops.metrics import Metrics
from bot.settings import Settings
from bot.store import ChatState, PendingExport
from bot.texts import fmt_elapsed, progress_bar, t
from bot.timeline import timeline_of
from router import ExportOptions

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

    async def start(self, turn: Turn, options: ExportOptions | None = None) -> None:
        """Render the project and follow the render to its video. What the request asked
        that only the project decides (its canvas) is said first, with how to change it."""
        api = await self._sessions.api(turn)
        sid = session_id(turn)
        project = await api.state(sid)
        await self._states.remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("nothing_to_export", turn.lang)))
            return
        options = options or ExportOptions()
        notes = export_notes(options, project.canvas, turn.lang)
        if notes:
            await turn.out.send(SendText("\n".join(notes)))
        ref = new_ref("export")
        await turn.out.send(Progress(ref, _progress_text(turn.lang, 0, 0.0, None)))
        await turn.out.send(ChatAction("upload_video"))
        job = await api.start_export(sid, project.draft, quality=options.quality or "high")
        pending = PendingExport(
            render_id=job.id, started_at=time.time(), lang=turn.lang, progress_ref=ref
        )
        await self._states.update(turn, lambda s: s.pending.append(pending))
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
        api = await self._sessions.api(turn)
        for pending in state.pending:
            await self._cancel_render(api, turn, pending.render_id)
        ids = {p.render_id for p in state.pending}
        await self._states.update(turn, lambda s: _drop_pending(s, ids))
        return True

    async def _follow(self, turn: Turn, pending: PendingExport) -> None:
        """Poll the render until it is done, failed, cancelled or past the deadline."""
        api = await self._sessions.api(turn)
        lang = turn.lang
        ref = pending.progress_ref or new_ref("export")
        render_id = pending.render_id
        deadline = pending.started_at + self._settings.export_deadline_s
        interval = self._settings.export_poll_interval_s
        shown = _progress_text(lang, 0, 0.0, None)
        percent = 0
        eta = _Eta()
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
                    await self._deliver(turn, render_id, job.url)
                    return
                if job is not None and job.status is RenderStatus.FAILED:
                    await turn.out.send(Progress(ref, t("export_failed_line", lang), done=True))
                    await turn.out.send(SendText(render_failed_text(job.error, lang)))
                    await self._end(turn, render_id, "failed")
                    return
                if job is not None and job.status is RenderStatus.CANCELLED:
                    await turn.out.send(Progress(ref, t("export_stopped_line", lang), done=True))
                    await turn.out.send(SendText(t("export_cancelled_remote", lang)))
                    await self._end(turn, render_id, "cancelled")
                    return
                now = time.time()
                if now >= deadline:
                    await self._cancel_render(api, turn, render_id)
                    await turn.out.send(Progress(ref, t("export_timeout_line", lang), done=True))
                    minutes = max(1, round(self._settings.export_deadline_s / 60))
                    await turn.out.send(SendText(t("export_deadline", lang, minutes=minutes)))
                    await self._end(turn, render_id, "deadline")
                    return
                if job is not None:
                    # Shown progress never goes backwards, whatever the service reports.
                    percent = max(percent, min(99, int(job.progress)))
                    spent = time.time() - pending.started_at
                    text = _progress_text(lang, percent, spent, eta.left(spent, percent))
                    if text != shown:
                        await turn.out.send(Progress(ref, text))
                        shown = text
                await turn.out.send(ChatAction("upload_video"))
                await asyncio.sleep(max(0.0, min(interval, deadline - now)))
        except asyncio.CancelledError:
            if turn.rt.cancel_requested:
                await self._cancel_render(api, turn, render_id)
                await safe_send(turn.out, Progress(ref, t("export_stopped_line", lang), done=True))
                await safe_send(turn.out, SendText(t("export_cancelled", lang)))
                turn.rt.cancel_reported = True
                await self._end(turn, render_id, "cancelled")
            raise
        finally:
            self._metrics.exports_pending.dec()

    async def _deliver(self, turn: Turn, render_id: str, url: str) -> None:
        """Send the video; it stays pending (and is sent again later) until it arrived."""
        lang = turn.lang
        timeline = timeline_of(turn.state.last_draft)
        canvas = timeline.canvas
        video = SendVideo(
            url=url,
            caption=t("export_caption", lang),
            buttons=(button("new", lang), button("credits", lang)),
            duration=timeline.duration_s or None,
            width=canvas.width if canvas else None,
            height=canvas.height if canvas else None,
            lang=lang,
        )
        try:
            await turn.out.send(video)
        except DeliveryFailed as exc:
            log.warning(
                "video not delivered, kept to send again: %s",
                exc,
                extra={"chat_id": turn.chat_id, "render_id": render_id},
            )
            self._metrics.exports.labels("undelivered").inc()
            return
        await self._end(turn, render_id, "completed")

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

    async def _end(self, turn: Turn, render_id: str, outcome: str) -> None:
        log.info(
            "export finished",
            extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
        )
        self._metrics.exports.labels(outcome).inc()
        await self._states.update(turn, lambda s: _drop_pending(s, {render_id}))


def _drop_pending(state: ChatState, render_ids: set[str]) -> None:
    state.pending = [p for p in state.pending if p.render_id not in render_ids]


def _progress_text(lang: str, percent: int, spent_s: float, left_s: float | None) -> str:
    """`🎬 Rendering… 46% (0:12) ▓▓▓▓▓░░░░░░░ · about 0:14 left`: one line, as terminals
    redraw a status line in place; the time left once it can be told."""
    head = t("export_progress", lang, percent=percent, elapsed=fmt_elapsed(spent_s))
    line = f"{head} {progress_bar(percent)}"
    if left_s is None:
        return line
    return f"{line} · {t('export_left', lang, left=fmt_elapsed(left_s))}"


class _Eta:
    """Time left, from the pace of progress since it first moved (renders often wait in
    a queue at 0% first, which says nothing of their pace)."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None

    def left(self, spent_s: float, percent: int) -> float | None:
        if percent <= 0 or percent >= 100:
            return None
        if self._first is None:
            self._first = (spent_s, percent)
            return None
        since, base = self._first
        if percent <= base or spent_s <= since:
            return None
        return (100 - percent) * (spent_s - since) / (percent - base)
