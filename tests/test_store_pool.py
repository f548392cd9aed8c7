"""A crowd on a small Redis connection pool: requests wait for a free connection however
long it takes, so overload becomes delay and never "I can't reach my memory"."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from backend.sim import Simulator
from bot.app import build_app
from bot.io import Inbound
from bot.texts import t
from tests.conversation_fixtures import Recorder, conv_settings
from tests.telegram_fixtures import quick_sim

POOL = 2
CHATS = 60


async def test_a_crowd_on_a_tiny_pool_waits_for_connections_and_never_hears_of_memory(
    redis_url: str, namespace: str, redis_client: Redis
) -> None:
    sim = Simulator(quick_sim())
    await sim.start()
    settings = conv_settings(
        sim.base_url,
        redis_url=redis_url,
        redis_namespace=namespace,
        redis_max_connections=POOL,
    )
    app = build_app(settings, "telegram")
    try:
        # Store operations far beyond the pool's connections, all at once.
        seen = await asyncio.gather(
            *(app.store.first_seen(800_000 + i) for i in range(400)),
            *(app.store.load(900_000 + i) for i in range(200)),
        )
        assert all(seen[:400]), "every update new, none failed"

        # Many chats' first messages at once: set-up, a session, the agent's answer.
        outboxes = {chat: Recorder() for chat in range(1, CHATS + 1)}
        await asyncio.gather(
            *(
                app.conversation.handle(
                    Inbound(update_id=chat, chat_id=chat, user_id=chat, text="hello there"),
                    out,
                )
                for chat, out in outboxes.items()
            )
        )
        memory = t("err_store", "en", ref="").split("(")[0].strip()
        for chat, out in outboxes.items():
            said = out.joined()
            assert memory[:30] not in said, f"chat {chat} was told the memory is out of reach"
            assert "I make videos" in said, f"chat {chat} not welcomed: {said!r}"
            assert len(out.texts()) >= 2, f"chat {chat} answered: {said!r}"
    finally:
        await app.aclose()
        await sim.stop()
