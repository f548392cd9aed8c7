"""Per-chat state: the contract every store keeps, Redis in production, memory for trials."""

from bot.store.base import (
    ChatState,
    ChatStore,
    Enqueued,
    PendingExport,
    StoreUnavailable,
    Taken,
)
from bot.store.memory_store import MemoryChatStore
from bot.store.redis_store import RedisChatStore

__all__ = [
    "ChatState",
    "ChatStore",
    "Enqueued",
    "MemoryChatStore",
    "PendingExport",
    "RedisChatStore",
    "StoreUnavailable",
    "Taken",
]
