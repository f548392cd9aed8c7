"""Exports: a render started from the project and followed to its video (or its failure,
cancellation or deadline), including renders a stopped process left in the store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from backend import BackendUnavailable, NemoApi, NemoError, RateLimited, RenderStatus, is_exportable
from bot.conversation.errors import render_failed_text
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn, new_ref, safe_send
from bot.conversation.text import button, export_notes
from bot.io import ChatAction, DeliveryFailed, Progress, SendText, SendVideo
from bot.ops.metrics import Metrics
from bot.settings import Settings
from bot.store import PendingExport
from bot.texts import fmt_elapsed, fmt_span, progress_bar, t
from bot.timeline import timeline_of
from router import ExportOptions

__all__ = ["Exports"]

log = logging.getLogger("bot.conversation")

# Delivery rounds (each `TELEGRAM_VIDEO_RETRY_S` of tries, then the link) before a video
# nothing reached is only kept for the chat's next /export.
_DELIVERY_ROUNDS = 12
# Status polls in a row the service may leave unanswered before the progress line says so.
_UNANSWERED_NOTICE = 6


@dataclass(eq=False)
class Exports:
    """Export and its follow-up, polled every `EXPORT_POLL_INTERVAL_S` until
    `EXPORT_DEADLINE_S`."""

    sessions: Sessions
    states: ChatStates
    settings: Settings
    metrics: Metrics

    async def start(self, turn: Turn, options: ExportOptions | None = None) -> None:
        """Render the project and follow the render to its video. What the request asked
        that only the project decides (its canvas) is said first, with how to change it."""
        api = await self.sessions.api(turn)
        sid = session_id(turn)
        project = await api.state(sid)
        await self.states.remember_draft(turn, project.draft)
        if not is_exportable(project.draft):
            await turn.out.send(SendText(t("nothing_to_export", turn.lang)))
            return
        key = draft_key(project.draft)
        if await self._offer_last_video(turn, key):
            return
        options = options or ExportOptions()
        notes = export_notes(options, project.canvas, turn.lang)
        if notes:
            await turn.out.send(SendText("\n".join(notes)))
        ref = new_ref("export")
        await turn.out.send(Progress(ref, _progress_text(turn.lang, 0, 0.0, None)))
        await turn.out.send(ChatAction("upload_video"))
        await turn.sending()
        starting = asyncio.ensure_future(
            api.start_export(sid, project.draft, quality=options.quality or "high")
        )
        try:
            job = await asyncio.shield(starting)
        except asyncio.CancelledError:
            if turn.rt.cancel_requested:  # a /cancel as the render starts: stop that render
                await self._stop_starting(api, turn, ref, starting)
            raise
        pending = PendingExport(
            render_id=job.id,
            started_at=time.time(),
            lang=turn.lang,
            progress_ref=ref,
            draft_key=key,
        )
        await self.states.add_pending(turn, pending)
        log.info("export started", extra={"chat_id": turn.chat_id, "render_id": job.id})
        await self._follow(turn, pending)

    async def resume(self, turn: Turn, pending: PendingExport) -> None:
        """Follow a render a stopped process left, unless it ended meanwhile."""
        state = await self.states.store.load(turn.chat_id)
        turn.state = state
        if not any(p.render_id == pending.render_id for p in state.pending):
            return  # delivered or cancelled meanwhile (e.g. by another replica)
        await self._follow(turn, pending)

    async def cancel_stored(self, turn: Turn) -> bool:
        """Stop the renders in the chat's state that no job here follows (another process's,
        or a crashed one's); False when there are none."""
        state = await self.states.store.load(turn.chat_id)
        if not state.pending:
            return False
        turn.state = state
        api = await self.sessions.api(turn)
        for pending in state.pending:
            await self._cancel_render(api, turn, pending.render_id)
            await self._end(turn, pending.render_id, "cancelled")
        return True

    async def _follow(self, turn: Turn, pending: PendingExport) -> None:
        """Poll the render until it is done, failed, cancelled or past the deadline."""
        api = await self.sessions.api(turn)
        lang = turn.lang
        ref = pending.progress_ref or new_ref("export")
        render_id = pending.render_id
        deadline = pending.started_at + self.settings.export_deadline_s
        interval = self.settings.export_poll_interval_s
        shown = _progress_text(lang, 0, 0.0, None)
        percent = 0
        unanswered = 0  # status polls in a row the service did not answer
        eta = _Eta()
        self.metrics.exports_pending.inc()
        try:
            while True:
                try:
                    job = await api.export_status(render_id)
                except (BackendUnavailable, RateLimited) as exc:
                    # A render runs on without us: keep polling through outages, logged
                    # once each.
                    if not unanswered:
                        log.warning(
                            "export status unavailable, still polling: %s",
                            type(exc).__name__,
                            extra={"chat_id": turn.chat_id, "render_id": render_id},
                        )
                    unanswered += 1
                    job = None
                elapsed = fmt_elapsed(time.time() - pending.started_at)
                # Whoever removes the export from the store tells how it ended, and only
                # then: a video is never sent twice, however often the export is resumed.
                # Closing the progress line is an edit, harmless to repeat.
                if job is not None and job.status is RenderStatus.COMPLETED and job.url:
                    if await self._end(turn, render_id, "completed"):
                        done = Progress(ref, t("export_done", lang, elapsed=elapsed), done=True)
                        await self._deliver(turn, pending, job.url, done)
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
                spent = time.time() - pending.started_at
                text = shown
                if job is not None:
                    if unanswered:
                        log.info(
                            "export status answered again",
                            extra={"chat_id": turn.chat_id, "polls_missed": unanswered},
                        )
                        unanswered = 0
                    # Shown progress never goes backwards, whatever the service reports.
                    percent = max(percent, min(99, int(job.progress)))
                    text = _progress_text(lang, percent, spent, eta.left(spent, percent))
                elif unanswered >= _UNANSWERED_NOTICE:
                    waiting = t("export_waiting", lang)
                    text = f"{_progress_text(lang, percent, spent, None)} · {waiting}"
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
            self.metrics.exports_pending.dec()

    async def _deliver(self, turn: Turn, pending: PendingExport, url: str, done: Progress) -> None:
        """Send the video of an export this job removed from the store. When neither the
        video nor its link arrived, or the job is stopped before it did, the export goes
        back into the store, to be sent again later (by the sweep, in this process or
        another)."""
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
            if not pending.rounds:  # the render is announced once, not on each round
                await turn.out.send(done)
            await turn.out.send(video)
        except DeliveryFailed as exc:
            await self._undelivered(turn, pending, url, exc)
            return
        except BaseException:  # stopped (shutdown, a lapsed lock): kept for the next job
            kept = replace(pending, rounds=pending.rounds + 1)
            await asyncio.shield(self.states.add_pending(turn, kept))
            raise
        await self._remember_video(turn, url, pending.draft_key)

    async def _undelivered(
        self, turn: Turn, pending: PendingExport, url: str, exc: DeliveryFailed
    ) -> None:
        """Kept to send again; after `_DELIVERY_ROUNDS`, or at once for a user who blocked
        the bot, kept only as the chat's last video, which the next /export sends."""
        extra = {"chat_id": turn.chat_id, "render_id": pending.render_id}
        rounds = pending.rounds + 1
        if exc.permanent or rounds >= _DELIVERY_ROUNDS:
            log.warning("video not delivered, kept for the next export: %s", exc, extra=extra)
            self.metrics.exports.labels("undeliverable").inc()
            await self._remember_video(turn, url, pending.draft_key, delivered=False)
            return
        log.warning("video not delivered, kept to send again: %s", exc, extra=extra)
        self.metrics.exports.labels("undelivered").inc()
        await self.states.add_pending(turn, replace(pending, rounds=rounds))

    async def _stop_starting(
        self, api: NemoApi, turn: Turn, ref: str, starting: asyncio.Future[Any]
    ) -> None:
        """Wait for the render being started, then cancel it, and say so."""
        try:
            job = await starting
        except Exception:  # it did not start: nothing runs on the server
            log.info("export start failed after a cancel", extra={"chat_id": turn.chat_id})
        else:
            await self._cancel_render(api, turn, job.id)
        await safe_send(turn.out, Progress(ref, t("export_stopped_line", turn.lang), done=True))
        await safe_send(turn.out, SendText(t("export_cancelled", turn.lang)))
        turn.rt.cancel_reported = True

    async def _remember_video(
        self, turn: Turn, url: str, key: str | None, *, delivered: bool = True
    ) -> None:
        if key is not None:
            video = {"url": url, "draft": key} | ({} if delivered else {"undelivered": "1"})
            await self.states.set_last_video(turn, video)

    async def _offer_last_video(self, turn: Turn, key: str) -> bool:
        """An unchanged project's video again instead of a new render, once: asked again
        right after, it is rendered anew."""
        video = turn.state.last_video
        if not video or video.get("draft") != key or video.get("offered"):
            return False
        await self.states.set_last_video(turn, {**video, "offered": "1"})
        caption = "export_caption" if video.get("undelivered") else "export_unchanged"
        await turn.out.send(
            SendVideo(
                url=video["url"],
                caption=t(caption, turn.lang),
                buttons=(button("new", turn.lang), button("credits", turn.lang)),
            )
        )
        return True

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
        duration = fmt_span(self.settings.export_deadline_s, lang)
        return t("export_deadline", lang, duration=duration)

    async def _end(self, turn: Turn, render_id: str, outcome: str) -> bool:
        """Remove the export from the store; False when another job did (and told) it."""
        if not await self.states.claim_pending(turn, render_id):
            log.info(
                "export ended elsewhere",
                extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
            )
            return False
        log.info(
            "export finished",
            extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
        )
        self.metrics.exports.labels(outcome).inc()
        return True


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


def draft_key(draft: Mapping[str, Any] | None) -> str:
    """A short fingerprint of one version of the project."""
    body = json.dumps(draft, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]
