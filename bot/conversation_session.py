"""A chat's backend view and session: its token (or the operator's), stored and renewed with
the chat, and its project with the agent, set up at first contact and replaced when lost."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from backend import Credentials, NemoApi, NemoClient
from bot.conversation_state import ConversationState, Turn, new_ref, safe_send
from bot.io import Progress, SendText
from bot.store import ChatState
from bot.texts import t

__all__ = ["SessionSetup"]

# Every part of the conversation logs under one name, so its lines are found together.
log = logging.getLogger("bot.conversation")


class SessionSetup(ConversationState):
    """Set-up, credentials and the session. Needs the backend client, and whether the bot
    runs on the operator's token (then chats keep no token of their own)."""

    _client: NemoClient
    _operator: bool

    async def _api(self, turn: Turn) -> NemoApi:
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

    async def _save_creds(self, chat_id: int, creds: Credentials, turn: Turn) -> None:
        log.info("backend token stored", extra={"chat_id": chat_id})

        def apply(s: ChatState) -> None:
            s.token = creds.token
            s.token_expires_at = creds.expires_at.timestamp() if creds.expires_at else None
            if creds.client_id:
                s.client_id = creds.client_id

        await self._update(turn, apply)

    async def _ensure_session(self, turn: Turn) -> bool:
        """First contact: "Setting things up…", a token and a session, then "Ready"."""
        if turn.state.session_id is not None:
            return False
        ref = new_ref("setup")
        await turn.out.send(Progress(ref, t("setup", turn.lang)))
        try:
            api = await self._api(turn)
            session = await api.create_session(turn.lang)
        except Exception:
            await safe_send(turn.out, Progress(ref, t("setup_failed", turn.lang), done=True))
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

    async def _replace_session(self, turn: Turn) -> None:
        api = await self._api(turn)
        session = await api.create_session(turn.lang)

        def apply(s: ChatState) -> None:
            s.session_id = session.session_id
            s.task_id = session.task_id
            s.last_draft = None

        await self._update(turn, apply)

    async def _new_project(self, turn: Turn) -> None:
        if turn.state.session_id is None:
            await self._ensure_session(turn)
            return
        await self._replace_session(turn)
        log.info("new project", extra={"chat_id": turn.chat_id})
        await turn.out.send(SendText(t("new_project", turn.lang)))

    def _session_id(self, turn: Turn) -> str:
        sid = turn.state.session_id
        assert sid is not None, "the session is ensured before any action"
        return sid
