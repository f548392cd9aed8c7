"""nemobot as a real process: a clean environment, `nemobot chat` for one chat over pipes,
and a stop that never leaves a process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The bot's own configuration; a test sets what it needs, nothing leaks in from the shell.
CONFIG_PREFIXES = ("NEMO_", "REDIS_", "TELEGRAM_")
PIPE = asyncio.subprocess.PIPE


def clean_env(*drop: str, **values: str) -> dict[str, str]:
    """This environment without the bot's configuration (nor anything starting with one of
    `drop`), the repository importable, then `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES + drop)}
    return env | {"PYTHONPATH": str(REPO)} | values


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 30) -> None:
    """SIGTERM, and SIGKILL if it has not ended within `timeout` seconds."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    await reap(process, timeout)


async def reap(process: asyncio.subprocess.Process, timeout: float = 30) -> None:
    """Wait for a process told to stop; kill it if it does not."""
    try:
        await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()


async def say(process: asyncio.subprocess.Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{line}\n".encode())
    await process.stdin.drain()


async def read_until(stream: asyncio.StreamReader, needle: str, timeout: float = 30) -> str:
    """A process's output up to the line holding `needle`."""
    seen = ""

    async def scan() -> str:
        nonlocal seen
        while needle not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"output ended before {needle!r}:\n{seen}")
            seen += line.decode()
        return seen

    return await asyncio.wait_for(scan(), timeout)


@dataclass
class ChatCommand:
    """`nemobot chat` for one chat, against the simulator and the test's Redis namespace, as
    many processes as a test starts (each one a restart of the bot)."""

    sim_url: str
    redis_url: str
    namespace: str
    cwd: Path
    chat_id: int

    def env(self) -> dict[str, str]:
        return clean_env(
            "LC_",
            "LANG",
            LANG="C.UTF-8",
            PYTHONIOENCODING="utf-8",
            NEMO_API_BASE=self.sim_url,
            REDIS_URL=self.redis_url,
            REDIS_NAMESPACE=self.namespace,
            EXPORT_POLL_INTERVAL_S="0.2",
            LOCK_TTL_S="1",
        )

    async def start(
        self, *extra: str, stdin: int = PIPE, stdout: int = PIPE, stderr: int = PIPE
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "chat", "--chat-id", str(self.chat_id)),
            *("--lang", "en", *extra),
            env=self.env(),
            cwd=self.cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )

    async def run(self, *extra: str, timeout: float = 60) -> tuple[int | None, str, str]:
        """A process with nothing to say: what it does on its own (resuming the chat's
        work) until it ends; its exit code, output and errors."""
        process = await self.start(*extra, stdin=asyncio.subprocess.DEVNULL)
        out, errors = await asyncio.wait_for(process.communicate(), timeout)
        return process.returncode, out.decode(), errors.decode()
