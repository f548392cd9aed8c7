"""Chat stream decoding speed: our iterator against httpx-sse alone, in the same run.

A long recorded ADK stream (built from the real capture's events, with keep-alives) is
served over real HTTP on 127.0.0.1 by a separate process; the client reads it (1) with
httpx-sse alone (`aconnect_sse` + `aiter_sse`, events counted, nothing decoded) and (2)
through `NemoApi.chat` (typed events). The same bytes are also decoded in memory, with no
HTTP, to show the decoding layer by itself. Target: ours ≤ 1.5× bare httpx-sse over HTTP.

Run: python benchmarks/bench_backend.py   (writes the `## backend` section of RESULTS.md)
"""

from __future__ import annotations

import asyncio
import codecs
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from httpx_sse import aconnect_sse  # noqa: E402
from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # noqa: E402
from results import machine, now, write_section  # noqa: E402

from backend import ClientConfig, Credentials, NemoClient, StreamParser  # noqa: E402
from backend.transport import backend_transport  # noqa: E402

CAPTURE = ROOT / "tests" / "data" / "adk-sse-capture.txt"
EVENTS = 60_000
ROUNDS = 15
BLOCK = 64 * 1024

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

app = web.Application()
app.router.add_post("/run_sse", run_sse)
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


async def bare_httpx_sse(http: httpx.AsyncClient, base: str) -> int:
    count = 0
    async with aconnect_sse(http, "POST", f"{base}/run_sse", json={}) as source:
        async for _ in source.aiter_sse():
            count += 1
    return count


def our_chat(client: NemoClient) -> Callable[[], Awaitable[int]]:
    api = client.bind(Credentials("nmv_usr_benchmark000", "cid", None, anonymous=True))

    async def run() -> int:
        count = 0
        async for _ in api.chat("42", "go"):
            count += 1
        return count

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
    times: dict[str, list[float]] = {"bare": [], "ours": [], "bare cpu": [], "ours cpu": []}
    try:
        await wait_up(f"{base}/run_sse")
        config = ClientConfig(base_url=base, chat_timeout=600, chat_read_timeout=60)
        # Both read through the transport the product uses (httpx over aiohttp).
        async with httpx.AsyncClient(timeout=60, transport=backend_transport(10)) as http:
            client = NemoClient(http, config)
            ours = our_chat(client)

            async def bare() -> int:
                return await bare_httpx_sse(http, base)

            await bare()
            await ours()  # warm both paths and the connection pool
            for _ in range(ROUNDS):
                for name, fn in (("bare", bare), ("ours", ours)):
                    wall, cpu = await timed(fn)
                    times[name].append(wall)
                    times[f"{name} cpu"].append(cpu)
    finally:
        server.terminate()
        server.wait(10)
        os.unlink(tmp.name)
    return times


def in_memory(stream: bytes) -> dict[str, list[float]]:
    blocks = [stream[i : i + BLOCK] for i in range(0, len(stream), BLOCK)]

    def bare(parse_json: bool) -> int:
        text = codecs.getincrementaldecoder("utf-8")()
        lines = SSELineDecoder()
        decoder = SSEDecoder()
        count = 0
        for block in blocks:
            for line in lines.decode(text.decode(block)):
                sse = decoder.decode(line)
                if sse is not None:
                    count += 1
                    if parse_json and sse.data:
                        json.loads(sse.data)
        return count

    def ours() -> int:
        parser = StreamParser()
        count = 0
        for block in blocks:
            count += len(parser.feed(block))
        return count + len(parser.close())

    runs: dict[str, Callable[[], int]] = {
        "bare": lambda: bare(False),
        "bare+json": lambda: bare(True),
        "ours": ours,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, fn in runs.items():
            gc.collect()
            started = time.process_time()
            fn()
            times[name].append(time.process_time() - started)
    return times


def main() -> int:
    stream, events = build_stream(EVENTS)
    http_times = asyncio.run(over_http(stream))
    mem_times = in_memory(stream)

    def rate(seconds: list[float]) -> float:
        return events / statistics.median(seconds)

    def ratio(times: dict[str, list[float]], ours: str, base: str) -> float:
        return statistics.median(times[ours]) / statistics.median(times[base])

    cpu_ratio = ratio(http_times, "ours cpu", "bare cpu")
    wall_ratio = ratio(http_times, "ours", "bare")
    verdict = "met" if cpu_ratio <= 1.5 else "NOT met"
    h, m = http_times, mem_times
    rows = [
        "| path | events/s (CPU) | × bare | events/s (wall) | × bare |",
        "|---|---:|---:|---:|---:|",
        f"| over HTTP: httpx-sse alone (`aiter_sse`, events only counted) "
        f"| {rate(h['bare cpu']):,.0f} | 1.00 | {rate(h['bare']):,.0f} | 1.00 |",
        f"| over HTTP: `NemoApi.chat` (typed events) | {rate(h['ours cpu']):,.0f} "
        f"| {cpu_ratio:.2f} | {rate(h['ours']):,.0f} | {wall_ratio:.2f} |",
        f"| in memory: httpx-sse decoders alone | {rate(m['bare']):,.0f} | 1.00 | | |",
        f"| in memory: httpx-sse decoders + `json.loads` per event "
        f"| {rate(m['bare+json']):,.0f} | {ratio(m, 'bare+json', 'bare'):.2f} | | |",
        f"| in memory: `StreamParser` (typed events) | {rate(m['ours']):,.0f} "
        f"| {ratio(m, 'ours', 'bare'):.2f} | | |",
    ]
    table = "\n".join(rows)
    body = f"""
Measured {now()} on {machine()} (shared),
httpx {httpx.__version__} over aiohttp {aiohttp.__version__} (the client's transport, for both
paths). Stream: {events:,} SSE events
({len(stream) / 1e6:.1f} MB) built from the ADK capture's events (partial text chunks, a tool
call and response every 40 chunks, keep-alives in all three shapes), served in
{BLOCK // 1024} KB writes by an aiohttp process on 127.0.0.1. Median of {ROUNDS} interleaved
rounds. "CPU" rates count the reading process's CPU time only (the server is another
process), which other load on the machine barely moves; wall-clock rates swing with it.

{table}

Target (our layer ≤ 1.5× bare httpx-sse over HTTP, CPU time): **{verdict}**
({cpu_ratio:.2f}×; wall clock {wall_ratio:.2f}×). A plain `json.loads` of each ADK event
alone costs {ratio(mem_times, "bare+json", "bare"):.1f}× the bare decoders, so our layer reads
ADK text chunks (nearly every event of a turn) without a full JSON parse; every other event,
and any text chunk not shaped exactly like ADK's, takes `json.loads`. Over HTTP the ratio
lies between 1 and the in-memory one, nearer the latter the cheaper the transport: with
aiohttp under httpx, reading the bytes costs less than parsing the events, so what remains
is mostly our parser's own cost per event (the in-memory row).
"""
    write_section("backend", body)
    print(body.strip())
    print("wrote the backend section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
