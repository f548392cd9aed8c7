"""Exports: a render started from the project and followed to its video (or its failure,
cancellation or deadline), including renders a stopped process left in the store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from backend import BackendUnavailable, NemoApi, NemoError, RateLimited, RenderStatus, is_exportable
from bot.conversation.errors import render_failed_text
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import ChatStates, Turn, new_ref, safe_send
from bot.conversation.text import button
from bot.io import ChatAction, Progress, SendText, SendVideo
from bot.ops.metrics import Metrics
from bot.settings import Settings
from bot.store import ChatState, PendingExport
from bot.texts import fmt_elapsed, t

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
        key = draft_key(project.draft)
        if await self._offer_last_video(turn, key):
            return
        ref = new_ref("export")
        await turn.out.send(
            Progress(ref, t("export_progress", turn.lang, percent=0, elapsed=fmt_elapsed(0)))
        )
        await turn.out.send(ChatAction("upload_video"))
        starting = asyncio.ensure_future(api.start_export(sid, project.draft))
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
                if job is not None and job.status is RenderStatus.COMPLETED and job.url:
                    done = t("export_done", lang, elapsed=elapsed)
                    await turn.out.send(Progress(ref, done, done=True))
                    await turn.out.send(
                        SendVideo(
                            url=job.url,
                            caption=t("export_caption", lang),
                            buttons=(button("new", lang), button("credits", lang)),
                        )
                    )
                    await self._end(turn, render_id, "completed")
                    await self._remember_video(turn, job.url, pending.draft_key)
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
                    text = t("export_progress", lang, percent=percent, elapsed=elapsed)
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

    async def _remember_video(self, turn: Turn, url: str, key: str | None) -> None:
        if key is not None:
            video = {"url": url, "draft": key}
            await self._states.update(turn, lambda s: setattr(s, "last_video", video))

    async def _offer_last_video(self, turn: Turn, key: str) -> bool:
        """An unchanged project's video again instead of a new render, once: asked again
        right after, it is rendered anew."""
        video = turn.state.last_video
        if not video or video.get("draft") != key or video.get("offered"):
            return False
        offered = {**video, "offered": "1"}
        await self._states.update(turn, lambda s: setattr(s, "last_video", offered))
        await turn.out.send(
            SendVideo(
                url=video["url"],
                caption=t("export_unchanged", turn.lang),
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

    async def _end(self, turn: Turn, render_id: str, outcome: str) -> None:
        log.info(
            "export finished",
            extra={"chat_id": turn.chat_id, "render_id": render_id, "outcome": outcome},
        )
        self._metrics.exports.labels(outcome).inc()
        await self._states.update(turn, lambda s: _drop_pending(s, {render_id}))


def _drop_pending(state: ChatState, render_ids: set[str]) -> None:
    state.pending = [p for p in state.pending if p.render_id not in render_ids]


def draft_key(draft: Mapping[str, Any] | None) -> str:
    """A short fingerprint of one version of the project."""
    body = json.dumps(draft, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]
