"""A flood through the webhook: every call is answered as soon as its message is stored or
refused, never held for a reply Telegram is not taking yet; the chat gets one notice."""

from __future__ import annotations

from bot.conversation import MAX_QUEUED
from tests import telegram_fixtures
from tests.telegram_fixtures import HarnessFactory, ready

make_bot = telegram_fixtures.make_bot


async def test_refused_messages_are_acknowledged_before_any_reply_goes_out(
    make_bot: HarnessFactory,
) -> None:
    bot = await make_bot(webhook=True)
    api = bot.api
    ann = bot.user(931)
    await ready(bot, ann)
    bot.sim.set_fault("quiet_stream", times=None, seconds=6.0, every=0.5)
    api.send_text(ann, "make a 3 second video of a cat")
    await api.wait_for(lambda: api.chat_actions(ann.id), 10, "the job under way")
    # Telegram refuses this chat's messages for a while: no reply can go out.
    api.flood(retry_after=3, times=2, chat_id=ann.id, methods=["sendMessage", "editMessageText"])
    mark = len(api.calls)
    flood = [api.send_text(ann, f"again {i}")["update_id"] for i in range(MAX_QUEUED + 10)]

    def acknowledged() -> bool:
        answered = {u for u, status in api.webhook_deliveries if status == 200}
        return answered.issuperset(flood)

    await api.wait_for(acknowledged, 20, "every webhook call answered")
    shown = [
        c
        for c in api.calls[mark:]
        if c.chat_id == ann.id and c.ok and c.method in ("sendMessage", "editMessageText")
    ]
    assert shown == [], "answered before anything could be shown"
    await api.wait_for(
        lambda: any("did not take the 10 sent after them" in t for t in api.texts(ann.id)),
        90,  # behind the 20 "still working" replies, at one message a second
        "one notice with the burst count",
    )
    assert len([t for t in api.texts(ann.id) if "already waiting" in t]) == 1
