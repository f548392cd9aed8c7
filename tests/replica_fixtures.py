"""`nemobot run --webhook` replicas as real processes, behind the fake Bot API server's
round-robin balancer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from backend.sim import SimConfig, Simulator
from tests.conversation_fixtures import quick_sim_config
from tests.fake_botapi import BotMessage, FakeBotApi
from tests.process_fixtures import clean_env, stop_process
from tests.telegram_fixtures import free_port
from tests.waiting import until

LOCK_TTL_S = 2.0


@dataclass
class Replica:
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tg/hook"


def sim_config() -> SimConfig:
    """Renders long enough for a replica to die in the middle of one."""
    return quick_sim_config(render_seconds=5.0, chunk_delay_s=0.01, generate_seconds=0.2)


async def start_replica(
    api: FakeBotApi, sim: Simulator, redis_url: str, ns: str, **env_extra: str
) -> Replica:
    port = free_port()
    env = clean_env(
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE=api.base_url,
        TELEGRAM_FILE_BASE=api.base_file_url,
        NEMO_API_BASE=sim.base_url,
        REDIS_URL=redis_url,
        REDIS_NAMESPACE=ns,
        LOCK_TTL_S=str(LOCK_TTL_S),
        SWEEP_INTERVAL_S="0.5",
        EXPORT_POLL_INTERVAL_S="0.2",
        ALLOW_PRIVATE_DOWNLOADS="true",
        RATE_LIMIT_WAIT_S="0.05",
        LOG_LEVEL="WARNING",
        WEBHOOK_LISTEN="127.0.0.1",
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", "run"),
        *("--webhook", f"http://127.0.0.1:{port}/tg/hook", "--port", str(port)),
        env=env | env_extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Replica(port, process)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def stop_replicas(replicas: Sequence[Replica]) -> None:
    """SIGTERM to all at once, then each one waited for (killed if it hangs)."""
    await asyncio.gather(*(stop_process(replica.process) for replica in replicas))


@contextlib.asynccontextmanager
async def balanced(
    api: FakeBotApi, sim: Simulator, redis_urls: Sequence[str], ns: str, **env_extra: str
) -> AsyncIterator[list[Replica]]:
    """One replica per Redis URL, listening behind the balancer, stopped after the block."""
    replicas: list[Replica] = []
    try:
        for redis_url in redis_urls:
            replicas.append(await start_replica(api, sim, redis_url, ns, **env_extra))
        api.balance([r.url for r in replicas])
        await api.wait_for(
            lambda: all(listening(r.port) for r in replicas) and api.webhook_url,
            60,
            "the replicas",
        )
        yield replicas
    finally:
        await stop_replicas(replicas)


def title_answer(api: FakeBotApi, chat_id: int, n: int) -> list[BotMessage]:
    """The answers to "add a title saying Tn": the finished reply (it carries buttons), or
    the notice that the replica running it was stopped before it finished."""
    found = []
    for message in api.sent(chat_id, "text"):
        done = f'Added the title "T{n}"' in message.text and bool(message.buttons)
        interrupted = message.text.startswith("⚠️") and f"saying T{n}”" in message.text
        if done or interrupted:
            found.append(message)
    return found


async def settled_answers(api: FakeBotApi, chat_id: int, n: int = 1) -> list[BotMessage]:
    """The answers to "add a title saying Tn" once there is one, and a second more for any
    second answer to show."""
    await until(lambda: title_answer(api, chat_id, n), 30, "the answer")
    await asyncio.sleep(1.0)
    return title_answer(api, chat_id, n)


def deliveries_of(api: FakeBotApi, update_id: int) -> list[tuple[str, int]]:
    """Where the balancer delivered an update, and the status each replica answered."""
    return [(url, status) for u, url, status in api.balanced_deliveries if u == update_id]
