"""A TCP proxy in front of Redis that can hold one client's next write: the real way to
stop a process between a read and its write, whatever the code in between."""

from __future__ import annotations

import asyncio
import contextlib
import re

_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")
_WRITES = frozenset(
    {b"SET", b"DEL", b"HSET", b"HDEL", b"HSETNX", b"SADD", b"SREM", b"EVAL", b"EVALSHA", b"RPUSH"}
)


class HoldingProxy:
    def __init__(self, port: int) -> None:
        self._target = port
        self._server: asyncio.Server | None = None
        self._armed = False
        self._skip = 0
        self._dropping = False
        self.holding = asyncio.Event()
        self._release = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def hold_next_write(self, *, after: int = 0) -> None:
        """Hold the client's next write, or the one after `after` more writes went through."""
        self._skip = after
        self._dropping = False
        self._armed = True
        self.holding.clear()
        self._release.clear()

    def release(self) -> None:
        """Let the held write through."""
        self._release.set()

    def drop(self) -> None:
        """Throw the held write away and close its connection: what Redis sees of a process
        killed before its write left it."""
        self._dropping = True
        self._release.set()

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        for coro in (self._pump(reader, up_writer, hold=True), self._pump(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, hold: bool = False
    ) -> None:
        try:
            while chunk := await source.read(65536):
                if (
                    hold
                    and self._armed
                    and any(m.upper() in _WRITES for m in _COMMAND.findall(chunk))
                ):
                    if self._skip:
                        self._skip -= 1
                    else:
                        self._armed = False
                        self.holding.set()
                        await self._release.wait()
                        if self._dropping:
                            return
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
