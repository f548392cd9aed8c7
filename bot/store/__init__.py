"""Per-chat state: the contract every store keeps, and Redis, which runs it everywhere
(a server of the operator's, a Redis Cluster, or one nemobot starts in its data directory)."""

from bot.store.base import (
    ChatState,
    ChatStore,
    Enqueued,
    Lease,
    PendingExport,
    StoreUnavailable,
    Taken,
)
from bot.store.redis_store import RedisChatStore

__all__ = [
    "ChatState",
    "ChatStore",
    "Enqueued",
    "Lease",
    "PendingExport",
    "RedisChatStore",
    "StoreUnavailable",
    "Taken",
]
