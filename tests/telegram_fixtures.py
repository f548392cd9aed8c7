"""The whole bot as users meet it: the unmodified PTB application, the fake Bot API server,
the NemoVideo simulator and a real Redis, all on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from backend.sim import SimConfig, Simulator
from bot.app import App, build_app
from bot.settings import Settings, load_settings
from bot.store import ChatStore
from bot.telegram import ALLOWED_UPDATES, TelegramConfig, TelegramFront
from bot.telegram.webhook import WebhookServer, webhook_secret
from bot.texts import t
from tests.conversation_fixtures import png_bytes, quick_sim_config
from tests.fake_botapi import BotMessage, FakeBotApi, TgUser

__all__ = ["TgHarness", "free_port", "png_bytes"]

ANIMATE = "animate this photo into a cinematic 5-second video clip"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TgHarness:
    """One running bot; `restart()` replaces it with a fresh process-like instance."""

    api: FakeBotApi
    sim: Simulator
    store: ChatStore
    settings: Settings
    app: App | None = None
    front: TelegramFront | None = None
    application: Any = None
    webhook_port: int | None = None
    webhook: WebhookServer | None = None
    generations: list[Any] = field(default_factory=list)

    async def start(self, *, webhook: bool = False, secret: str | None = None) -> None:
        """What `run_polling`/`run_webhook` do, inside the test's event loop."""
        self.app = build_app(self.settings, "telegram", store=self.store)
        app = self.app

        async def closing() -> None:
            await app.client.aclose()
            await app.http.aclose()

        self.front = TelegramFront(
            app.conversation,
            TelegramConfig.from_settings(self.settings),
            store=app.store,
            metrics=app.metrics,
            on_stop=app.conversation.aclose,
            on_shutdown=closing,
        )
        application = self.front.build()
        self.application = application
        self.generations.append(application)
        await application.initialize()
        await application.post_init(application)
        if webhook:
            self.webhook_port = free_port()
            secret = webhook_secret(self.api.token, secret)
            self.webhook = WebhookServer(self.front, application, path="tg/hook", secret=secret)
            await self.webhook.start("127.0.0.1", self.webhook_port)
            await application.bot.set_webhook(
                f"http://127.0.0.1:{self.webhook_port}/tg/hook",
                secret_token=secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
        else:
            await application.updater.start_polling(
                poll_interval=0.0, timeout=1, allowed_updates=list(ALLOWED_UPDATES)
            )
        await application.start()

    async def stop(self) -> None:
        application = self.application
        if application is None:
            return
        self.application = None
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        if application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
            await application.post_stop(application)
        await application.shutdown()
        await application.post_shutdown(application)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # -- what a user does and sees
    def user(self, user_id: int = 501, lang: str | None = "en") -> TgUser:
        return self.api.user(user_id, language_code=lang)

    async def text_with(
        self, chat_id: int, needle: str, timeout: float = 15.0, *, after: int = 0
    ) -> BotMessage:
        return await self.api.wait_text(chat_id, needle, timeout, after=after)


def tg_settings(api: FakeBotApi, sim: Simulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_bot_token": api.token,
        "telegram_api_base": api.base_url,
        "telegram_file_base": api.base_file_url,
        "nemo_api_base": sim.base_url,
        "nemo_token": None,
        "redis_url": None,
        "export_poll_interval_s": 0.2,
        "export_deadline_s": 60,
        "quiet_notice_s": 30,
        "lock_ttl_s": 5,
        "rate_limit_wait_s": 0.05,
        "request_timeout_s": 10,
        "chat_timeout_s": 60,
        "allow_private_downloads": True,
        "media_group_wait_s": 1.2,
    }
    values.update(overrides)
    return load_settings(**values)


def quick_sim(**overrides: Any) -> SimConfig:
    """Answers stream at about the pace of Telegram's edits; renders take two seconds."""
    return quick_sim_config(
        **{"render_seconds": 2.0, "chunk_delay_s": 0.05, "generate_seconds": 0.2, **overrides}
    )


def slow_stream() -> SimConfig:
    """An agent that talks slowly enough for a user to act in the middle of its answer."""
    return quick_sim(chunk_delay_s=0.12, chunk_words=1)


HarnessFactory = Callable[..., Awaitable[TgHarness]]


@pytest.fixture
async def make_bot(redis_store: ChatStore) -> AsyncIterator[HarnessFactory]:
    """Starts fake Telegram + simulator + bot on the test's Redis namespace."""
    made: list[TgHarness] = []
    servers: list[Any] = []

    async def factory(
        *,
        sim_config: SimConfig | None = None,
        webhook: bool = False,
        secret: str | None = None,
        **settings_overrides: Any,
    ) -> TgHarness:
        api = await FakeBotApi().start()
        servers.append(api)
        sim = Simulator(sim_config or quick_sim())
        await sim.start()
        servers.append(sim)
        settings = tg_settings(api, sim, **settings_overrides)
        harness = TgHarness(api=api, sim=sim, store=redis_store, settings=settings)
        made.append(harness)
        await harness.start(webhook=webhook, secret=secret)
        return harness

    yield factory
    for harness in made:
        await harness.stop()
    for server in reversed(servers):
        await server.stop()


async def ready(bot: TgHarness, user: TgUser) -> None:
    """/start, answered through to the welcome."""
    bot.api.send_command(user, "start")
    await bot.text_with(user.id, t("welcome", user.language_code)[:12])


async def animated_reply(bot: TgHarness, user: TgUser, mark: int) -> BotMessage:
    """The agent's streamed answer after `mark`, once finished (it carries buttons)."""

    def final_reply() -> BotMessage | None:
        for m in bot.api.sent(user.id, "text")[mark:]:
            if m.buttons and len(m.history) > 1:
                return m
        return None

    return await bot.api.wait_for(final_reply, 40, "the final streamed reply")


async def project_ready(bot: TgHarness, user: TgUser) -> None:
    """A user with a clip on the timeline, ready to export."""
    await ready(bot, user)
    bot.api.send_photo(user, png_bytes())
    await bot.text_with(user.id, "📥")
    mark = len(bot.api.sent(user.id))
    bot.api.send_text(user, ANIMATE)
    await animated_reply(bot, user, mark)


async def bot_with_a_project(
    make_bot: HarnessFactory, user_id: int, lang: str = "en", **settings_overrides: Any
) -> tuple[TgHarness, TgUser]:
    """A bot (settings and `sim_config` as `make_bot` takes them) and a user whose project
    is ready to export."""
    bot = await make_bot(**settings_overrides)
    user = bot.user(user_id, lang)
    await project_ready(bot, user)
    return bot, user
