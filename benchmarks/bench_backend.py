"""The backend client over real HTTP: its transport against plain httpx, and its chat
stream reader against httpx-sse alone, each pair in the same run.

An aiohttp server in a separate process serves (1) a long recorded ADK stream (built from
the real capture's events, with keep-alives) and (2) a small JSON answer for quick calls.
The client reads the stream with httpx-sse alone (`aiter_sse`, events counted), with
httpx-sse plus `json.loads` per event (the least any typed reader pays), and through
`NemoApi.chat` (typed events); and it makes bursts of quick calls (`NemoApi.credits`, 50 in
flight, so a few dozen connections are pooled), once over the product's transport
(`build_client`: httpx over aiohttp) and once over plain httpx (httpcore's pool).

Run: python benchmarks/bench_backend.py   (writes the `## backend` section of RESULTS.md)
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from httpx_sse import EventSource, aconnect_sse  # noqa: E402
from results import machine, now, write_section  # noqa: E402

from backend import (  # noqa: E402
    ClientConfig,
    Credentials,
    NemoClient,
    StreamParser,
    build_client,
)

CAPTURE = ROOT / "tests" / "data" / "adk-sse-capture.txt"
EVENTS = 60_000
ROUNDS = 15
BLOCK = 64 * 1024
CALLS = 2_000  # quick calls per burst
IN_FLIGHT = 50

SERVER = r"""
import sys
from aiohttp import web

body = open(sys.argv[2], "rb").read()
block = int(sys.argv[3])

async def run_sse(request):
    await request.read()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    for start in range(0, len(body), block):
        await response.write(body[start:start + block])
    await response.write_eof()
    return response

async def credits(request):
    return web.json_response({"code": 0, "data": {"available": 100, "frozen": 0, "total": 100}})

app = web.Application()
app.router.add_post("/run_sse", run_sse)
app.router.add_get("/api/credits/balance/simple", credits)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def capture_events() -> list[dict[str, object]]:
    text = CAPTURE.read_text(encoding="utf-8")
    body = text.split("### ")[1].split("\n", 1)[1]
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def build_stream(count: int) -> tuple[bytes, int]:
    """A long turn: mostly partial text chunks, tool calls now and then, keep-alives."""
    partial, call, response, final = capture_events()
    out: list[bytes] = []
    n = 0

    def add(event: dict[str, object]) -> None:
        nonlocal n
        out.append(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
        n += 1

    i = 0
    while n < count - 1:
        chunk = json.loads(json.dumps(partial))
        chunk["content"]["parts"][0]["text"] = f"chunk {i} of the reply, "
        add(chunk)
        if i % 40 == 39:
            add(call)
            add({"type": "heartbeat"})
            out.append(b": keep-alive\n\n")
            out.append(b"data: \n\n")
            n += 2
            add(response)
        i += 1
    add(final)
    return b"".join(out), n


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                await http.post(url, content=b"{}")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError("benchmark server did not start")


async def httpx_sse_alone(http: httpx.AsyncClient, base: str, parse: bool) -> int:
    count = 0
    async with aconnect_sse(http, "POST", f"{base}/run_sse", json={}) as source:
        async for sse in source.aiter_sse():
            count += 1
            if parse and sse.data:
                json.loads(sse.data)
    return count


def our_chat(client: NemoClient) -> Callable[[], Awaitable[int]]:
    api = client.bind(Credentials("nmv_usr_benchmark000", "cid", None, anonymous=True))

    async def run() -> int:
        count = 0
        async for _ in api.chat("42", "go"):
            count += 1
        return count

    return run


def quick_calls(client: NemoClient) -> Callable[[], Awaitable[int]]:
    api = client.bind(Credentials("nmv_usr_benchmark000", "cid", None, anonymous=True))

    async def run() -> int:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one() -> None:
            async with gate:
                await api.credits()

        await asyncio.gather(*(one() for _ in range(CALLS)))
        return CALLS

    return run


async def timed(fn: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): the server runs in another process."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    await fn()
    return time.perf_counter() - wall, time.process_time() - cpu


async def over_http(stream: bytes) -> dict[str, list[float]]:
    with tempfile.NamedTemporaryFile(suffix=".sse", delete=False) as tmp:
        tmp.write(stream)
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, "-c", SERVER, str(port), tmp.name, str(BLOCK)]
    )
    base = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {}
    try:
        await wait_up(f"{base}/run_sse")
        config = ClientConfig(base_url=base, chat_timeout=600, chat_read_timeout=60)
        ours = build_client(config, max_connections=100)
        plain = NemoClient(
            httpx.AsyncClient(
                timeout=httpx.Timeout(config.request_timeout),
                limits=httpx.Limits(max_connections=100, keepalive_expiry=5.0),
            ),
            config,
            owns_http=True,
        )
        paths: dict[str, Callable[[], Awaitable[int]]] = {
            "sse": lambda: httpx_sse_alone(ours.http, base, parse=False),
            "sse+json": lambda: httpx_sse_alone(ours.http, base, parse=True),
            "chat": our_chat(ours),
            "chat plain": our_chat(plain),
            "calls": quick_calls(ours),
            "calls plain": quick_calls(plain),
        }
        try:
            for fn in paths.values():  # warm every path and both pools
                await fn()
            for _ in range(ROUNDS):
                for name, fn in paths.items():
                    wall, cpu = await timed(fn)
                    times.setdefault(name, []).append(wall)
                    times.setdefault(f"{name} cpu", []).append(cpu)
        finally:
            await ours.aclose()
            await plain.aclose()
    finally:
        server.terminate()
        server.wait(10)
        os.unlink(tmp.name)
    return times


async def in_memory(stream: bytes) -> dict[str, list[float]]:
    """The decoding layers alone: the same bytes from memory, no socket."""
    blocks = [stream[i : i + BLOCK] for i in range(0, len(stream), BLOCK)]

    async def body() -> AsyncIterator[bytes]:
        for block in blocks:
            yield block

    async def httpx_sse(parse: bool) -> int:
        response = httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, content=body()
        )
        count = 0
        async for sse in EventSource(response).aiter_sse():
            count += 1
            if parse and sse.data:
                json.loads(sse.data)
        return count

    async def ours() -> int:
        parser = StreamParser()
        count = 0
        for block in blocks:
            count += len(parser.feed(block))
        return count + len(parser.close())

    runs: dict[str, Callable[[], Awaitable[int]]] = {
        "sse": lambda: httpx_sse(False),
        "sse+json": lambda: httpx_sse(True),
        "parser": ours,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, fn in runs.items():
            gc.collect()
            started = time.process_time()
            await fn()
            times[name].append(time.process_time() - started)
    return times


def main() -> int:
    stream, events = build_stream(EVENTS)
    h = asyncio.run(over_http(stream))
    m = asyncio.run(in_memory(stream))

    def med(times: dict[str, list[float]], name: str) -> float:
        return statistics.median(times[name])

    def ratio(times: dict[str, list[float]], ours: str, base: str) -> float:
        return med(times, ours) / med(times, base)

    def row(label: str, name: str, base: str, per: int) -> str:
        cpu, wall = f"{name} cpu", name
        return (
            f"| {label} | {per / med(h, cpu):,.0f} | {ratio(h, cpu, f'{base} cpu'):.2f} "
            f"| {per / med(h, wall):,.0f} | {ratio(h, wall, base):.2f} |"
        )

    per_event_us = (med(m, "parser") - med(m, "sse")) / events * 1e6
    transport_speed = med(h, "calls plain cpu") / med(h, "calls cpu")
    stream_speed = med(h, "chat plain cpu") / med(h, "chat cpu")
    rows = [
        "| path | per s (CPU) | CPU time × first row | per s (wall) | wall time × first row |",
        "|---|---:|---:|---:|---:|",
        "| **stream, over HTTP (events)** | | | | |",
        row("httpx-sse alone (`aiter_sse`, events only counted)", "sse", "sse", events),
        row("httpx-sse + `json.loads` per event", "sse+json", "sse", events),
        row("`NemoApi.chat` (typed events), product transport", "chat", "sse", events),
        row("`NemoApi.chat` (typed events), plain httpx", "chat plain", "sse", events),
        "| **quick calls, over HTTP (calls)** | | | | |",
        row("`NemoApi.credits`, product transport", "calls", "calls", CALLS),
        row("`NemoApi.credits`, plain httpx", "calls plain", "calls", CALLS),
    ]
    mem_rows = [
        "| decoding layer, in memory | events/s (CPU) | CPU time × first row |",
        "|---|---:|---:|",
        f"| httpx-sse alone (`aiter_sse`) | {events / med(m, 'sse'):,.0f} | 1.00 |",
        f"| httpx-sse + `json.loads` per event | {events / med(m, 'sse+json'):,.0f} "
        f"| {ratio(m, 'sse+json', 'sse'):.2f} |",
        f"| `StreamParser` (typed events) | {events / med(m, 'parser'):,.0f} "
        f"| {ratio(m, 'parser', 'sse'):.2f} |",
    ]
    body = f"""
Measured {now()} on {machine()} (shared),
httpx {httpx.__version__}, aiohttp {aiohttp.__version__}. Stream: {events:,} SSE events
({len(stream) / 1e6:.1f} MB) built from the ADK capture's events (partial text chunks, a tool
call and response every 40 chunks, keep-alives in all three shapes), served in
{BLOCK // 1024} KB writes by an aiohttp process on 127.0.0.1. Quick calls: bursts of
{CALLS:,} `GET /api/credits/balance/simple` with {IN_FLIGHT} in flight. Median of {ROUNDS}
interleaved rounds. "CPU" rates count the client process's CPU time only (the server is
another process), which other load on the machine barely moves; wall-clock rates swing
with it.

{chr(10).join(rows)}

{chr(10).join(mem_rows)}

**Transport**: plain httpx does {1 / transport_speed:.2f}× the quick calls per CPU second of
the product's transport (httpx over aiohttp, `backend/transport.py`), and reads the stream
at {1 / stream_speed:.2f}× its rate: the aiohttp transport stays.
**Stream reader**: `NemoApi.chat` costs {ratio(h, "chat cpu", "sse cpu"):.2f}× httpx-sse
alone and {ratio(h, "chat cpu", "sse+json cpu"):.2f}× httpx-sse with a `json.loads` per event
(CPU, over HTTP). Every event takes one `json.loads`; the parser's own cost over httpx-sse's
decoders is {per_event_us:.1f} µs per event, {per_event_us * 49 / 1000:.2f} ms for a typical
turn of 49 events.
"""
    write_section("backend", body)
    print(body.strip())
    print("wrote the backend section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
