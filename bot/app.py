"""The composition root: the one place that builds clients and wires objects together.

settings → httpx client → NemoClient → chat store → Conversation. Without REDIS_URL the
store is a server nemobot starts in its data directory, so every front end runs on Redis.
Everything else receives what it needs from here, so tests and front ends can build the
same graph with their own pieces.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import httpx
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from backend import ClientConfig, NemoClient, build_client
from bot.conversation import Conversation
from bot.ops.metrics import Metrics, endpoint_label
from bot.settings import CLUSTER_SCHEMES, SecretUrl, Settings
from bot.store import ChatStore, RedisChatStore
from bot.store.embedded import EmbeddedRedis

__all__ = [
    "App",
    "LoggedTransport",
    "build_app",
    "build_store",
    "client_config",
    "redis_client",
]

log = logging.getLogger(__name__)
backend_log = logging.getLogger("bot.backend")


class LoggedTransport(httpx.AsyncBaseTransport):
    """One log line per backend request: endpoint (ids folded), status, duration and
    outcome, including requests that never got an answer. URLs, headers and bodies are
    never logged, so tokens cannot leak through here. Streams are timed to their headers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        endpoint = endpoint_label(request.method, request.url.path)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            _log_backend_call(endpoint, None, started, type(exc).__name__)
            raise
        status = response.status_code
        _log_backend_call(endpoint, status, started, "ok" if status < 400 else str(status))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _log_backend_call(endpoint: str, status: int | None, started: float, outcome: str) -> None:
    backend_log.info(
        "backend call",
        extra={
            "backend_call": endpoint,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "outcome": outcome,
        },
    )


def client_config(settings: Settings, platform: str) -> ClientConfig:
    """The backend client's configuration; `platform` is `telegram` or `terminal` unless
    SKILL_PLATFORM overrides it."""
    token = settings.nemo_token.get_secret_value() if settings.nemo_token else None
    return ClientConfig(
        base_url=settings.nemo_api_base,
        platform=settings.skill_platform or platform,
        operator_token=token or None,
        rate_limit_wait=settings.rate_limit_wait_s,
        chat_timeout=settings.chat_timeout_s,
        request_timeout=settings.request_timeout_s,
        limits=settings.upload_limits(),
    )


def build_store(settings: Settings) -> ChatStore:
    """The chat store on REDIS_URL (`build_app` fills it in with the embedded server)."""
    if settings.redis_url is None:
        raise ValueError("build_store needs REDIS_URL; build_app starts the embedded server")
    idle_s = settings.idle_chat_ttl_days * 86400
    return RedisChatStore(redis_client(settings), settings.redis_namespace, idle_s)


def redis_client(settings: Settings) -> Redis | RedisCluster:
    """The Redis client REDIS_URL names: one server, or a Redis Cluster through any node."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    timeout = settings.redis_timeout_s
    if url.startswith(CLUSTER_SCHEMES):
        return RedisCluster.from_url(
            url.replace("+cluster", "", 1),
            max_connections=settings.redis_max_connections,
            socket_connect_timeout=min(5.0, timeout),
            socket_timeout=timeout,
        )
    # A blocking pool makes a burst wait for a free connection instead of failing, for as
    # long as it takes: overload is delay, never an error reply. A connection is never
    # held past `socket_timeout`, and a Redis that is down fails at connecting.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=None,
        socket_connect_timeout=min(5.0, timeout),
        socket_timeout=timeout,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


@dataclass
class App:
    """Everything a front end needs, and what to close when it stops."""

    settings: Settings
    http: httpx.AsyncClient  # the backend client's pool, also used to fetch rendered videos
    client: NemoClient
    store: ChatStore
    conversation: Conversation
    metrics: Metrics = field(default_factory=Metrics)
    embedded: EmbeddedRedis | None = None

    async def aclose(self) -> None:
        """Stop jobs (pending exports stay stored for the next start), then close clients
        and the embedded store's server, which writes its file on the way out."""
        await self.conversation.aclose()
        await self.client.aclose()  # and its HTTP pool, which it owns
        await self.store.aclose()
        if self.embedded is not None:
            self.embedded.stop()


def build_app(
    settings: Settings,
    platform: str,
    *,
    store: ChatStore | None = None,
    metrics: Metrics | None = None,
) -> App:
    """Wire the whole graph from the settings; pass `store` to use one built elsewhere.
    Without a store or REDIS_URL, the embedded server is started in DATA_DIR (it raises
    `EmbeddedRedisError` when it cannot run)."""
    metrics = metrics or Metrics()
    embedded = None
    if store is None and settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        settings = settings.model_copy(update={"redis_url": SecretUrl(embedded.start())})
    config = client_config(settings, platform)
    # Each open agent stream holds a connection: size the pool for the streams expected at once.
    client = build_client(
        config,
        max_connections=settings.backend_max_connections,
        wrap=LoggedTransport,
        event_hooks=metrics.httpx_hooks(),
    )
    chat_store = store if store is not None else build_store(settings)
    conversation = Conversation(
        client, chat_store, settings, metrics=metrics, web_base=config.web_base, front=platform
    )
    return App(
        settings=settings,
        http=client.http,
        client=client,
        store=chat_store,
        conversation=conversation,
        metrics=metrics,
        embedded=embedded,
    )
