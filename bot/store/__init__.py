"""Per-chat state: the store contract, kept in Redis (REDIS_URL, or the embedded server)."""

from bot.store.base import ChatState, ChatStore, PendingExport, StoreUnavailable, Taken
from bot.store.redis_store import RedisChatStore

__all__ = [
    "ChatState",
    "ChatStore",
    "PendingExport",
    "RedisChatStore",
    "StoreUnavailable",
    "Taken",
]
