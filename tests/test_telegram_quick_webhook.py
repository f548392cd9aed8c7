"""A quick answer through the webhook: the call is answered once the answer is computed
and handed to the sender, not held until a chat's backlog lets the reply out (Telegram
would give up on the call and deliver the update again); the reply arrives once."""

from __future__ import annotations

import asyncio

from bot.io import SendText
from tests import telegram_fixtures
from tests.telegram_fixtures import HarnessFactory, ready

make_bot = telegram_fixtures.make_bot

BACKLOG = 5


async def test_a_quick_answer_is_acknowledged_before_its_reply_and_sent_once(
    make_bot: HarnessFactory,
) -> None:
    bot = await make_bot(webhook=True)
    api = bot.api
    ann = bot.user(951)
    await ready(bot, ann)
    # Notices the chat is still to see, one a second: its send backlog.
    assert bot.front is not None
    notices = bot.front.outbox_for(ann.id)
    backlog = [asyncio.create_task(notices.send(SendText(f"notice {i}"))) for i in range(BACKLOG)]
    await api.wait_for(lambda: any("notice 0" in t for t in api.texts(ann.id)), 10, "backlog")
    update_id = api.send_command(ann, "credits")["update_id"]

    def acknowledged() -> bool:
        return any(u == update_id for u, _ in api.webhook_deliveries)

    await api.wait_for(acknowledged, 20, "the webhook call answered")
    replied = [t for t in api.texts(ann.id) if t.startswith("💳")]
    assert replied == [], "the call was held until the reply went out"
    assert [s for u, s in api.webhook_deliveries if u == update_id] == [200]

    await bot.text_with(ann.id, "💳", 30)
    await asyncio.gather(*backlog)
    await notices.close()
    await asyncio.sleep(1.5)  # a second copy would come a chat's pace later
    assert len([t for t in api.texts(ann.id) if t.startswith("💳")]) == 1
    assert [s for u, s in api.webhook_deliveries if u == update_id] == [200], "not delivered again"
