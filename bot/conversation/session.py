"""A chat's backend view and session: its token (or the operator's), stored and renewed with
the chat, and its project with the agent, set up at first contact and replaced when lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from backend import Credentials, NemoApi, NemoClient, SessionNotFound
from bot.conversation.state import ChatStates, Turn, new_ref, safe_send
from bot.conversation.text import menu
from bot.io import Progress, SendText
from bot.texts import t

__all__ = ["Sessions", "session_id"]

log = logging.getLogger("bot.conversation")


@dataclass(eq=False)
class Sessions:
    """Set-up, credentials and the session. `operator`: the bot runs on the operator's token,
    so chats keep no token of their own."""

    client: NemoClient
    states: ChatStates
    operator: bool

    async def api(self, turn: Turn) -> NemoApi:
        """The chat's backend view, with a token of its own (or the operator's)."""
        if turn.api is not None:
            return turn.api
        if turn.state.client_id is None:
            await self.states.claim_client_id(turn, str(uuid.uuid4()))
        client_id = turn.state.client_id or ""
        creds: Credentials | None = None
        if not self.operator and turn.state.token:
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
            creds = await self.client.credentials(client_id)
            if creds.anonymous:
                await self._save_creds(turn, creds)

        async def on_renew(new: Credentials) -> None:
            await self._save_creds(turn, new)

        turn.api = self.client.bind(creds, on_renew=on_renew)
        return turn.api

    async def _save_creds(self, turn: Turn, creds: Credentials) -> None:
        log.info("backend token stored", extra={"chat_id": turn.chat_id})
        expires = creds.expires_at.timestamp() if creds.expires_at else None
        await self.states.set_token(turn, creds.token, expires, creds.client_id or None)

    async def ensure(self, turn: Turn, *, welcome: bool | None = None) -> bool:
        """First contact: a token and a session, then the welcome; a group gets the welcome
        only when it asks for it (/start): it reads as a private chat's and would come
        before the answer someone asked for. "Setting things up…" and "Ready" make a
        fleeting line: a set-up quicker than a moment shows neither."""
        if turn.state.session_id is not None:
            return False
        ref = new_ref("setup")
        await turn.out.send(Progress(ref, t("setup", turn.lang), fleeting=True))
        try:
            api = await self.api(turn)
            session = await api.create_session(turn.lang)
        except Exception:
            await safe_send(turn.out, Progress(ref, t("setup_failed", turn.lang), done=True))
            raise
        await self.states.set_session(turn, session.session_id, session.task_id, turn.lang)
        log.info("session created", extra={"chat_id": turn.chat_id, "lang": turn.lang})
        await turn.out.send(Progress(ref, t("ready", turn.lang), done=True, fleeting=True))
        if welcome is None:
            welcome = not turn.is_group
        if welcome:
            await turn.out.send(SendText(t("welcome", turn.lang), buttons=menu(turn.lang)))
        return True

    async def replace(self, turn: Turn) -> None:
        """A new project in a new session (the old one was lost, or the user asked)."""
        api = await self.api(turn)
        session = await api.create_session(turn.lang)
        await self.states.set_session(turn, session.session_id, session.task_id)

    async def new_project(self, turn: Turn) -> None:
        if turn.state.session_id is None:
            await self.ensure(turn)
            return
        await self.replace(turn)
        log.info("new project", extra={"chat_id": turn.chat_id})
        await turn.out.send(SendText(t("new_project", turn.lang)))

    async def run(self, turn: Turn, action: Callable[[], Awaitable[None]], *, retry: bool) -> None:
        """Run `action` in the chat's session; a lost session is replaced and the user told,
        and an action that makes sense in a fresh project runs once more there."""
        await self.ensure(turn)
        try:
            await action()
        except SessionNotFound:
            log.info("session lost, starting a new one", extra={"chat_id": turn.chat_id})
            await self.replace(turn)
            await turn.out.send(SendText(t("session_restarted", turn.lang)))
            if retry:
                await action()
            else:
                await turn.out.send(SendText(t("status_empty", turn.lang)))


def session_id(turn: Turn) -> str:
    """The chat's session; every action runs after `Sessions.ensure`, so there is one."""
    sid = turn.state.session_id
    if sid is None:
        raise RuntimeError("an action ran before the chat's session was set up")
    return sid
