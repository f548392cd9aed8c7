"""Shared fixtures: a real Redis for every run, each test in its own namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis, RedisCluster

from bot.store import RedisChatStore
from tests.conversation_fixtures import HarnessFactory, harnesses
from tests.redis_server import ClusterProcesses, RedisProcess, free_port, reachable_redis


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Processes the tests start keep their data in a throwaway folder, never the user's."""
    home = tmp_path_factory.mktemp("xdg-data")
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL if set, else the local server if it answers, else a throwaway server."""
    with reachable_redis(os.environ.get("REDIS_URL")) as url:
        yield url


@pytest.fixture
def namespace() -> str:
    return f"nemobot-test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str, namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def redis_store(redis_client: Redis, namespace: str) -> RedisChatStore:
    return RedisChatStore(redis_client, namespace)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A server for this test alone, for faults that would reach every client of a shared
    one (writes paused, the server stalled or killed). It keeps an append-only file, so
    what it acknowledged outlives a kill and start."""
    server = RedisProcess(port=free_port(), persistent=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def make_harness(redis_store: RedisChatStore) -> AsyncIterator[HarnessFactory]:
    """Conversations on the simulator and the test's Redis namespace, closed after."""
    async with harnesses(redis_store) as factory:
        yield factory


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterProcesses]:
    """A real three-master Redis Cluster for the whole run."""
    cluster = ClusterProcesses().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster_client(
    redis_cluster: ClusterProcesses, namespace: str
) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url.replace("+cluster", "", 1))
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
        for key in keys:
            await client.delete(key)
        await client.aclose()


@pytest.fixture(params=["redis", "cluster"])
def store(request: pytest.FixtureRequest) -> RedisChatStore:
    """The same contract, run against one Redis (as every front end uses it, the embedded
    server included) and a Redis Cluster."""
    if request.param == "cluster":
        client = request.getfixturevalue("cluster_client")
        return RedisChatStore(client, request.getfixturevalue("namespace"))
    result: RedisChatStore = request.getfixturevalue("redis_store")
    return result
