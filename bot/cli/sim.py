"""`nemobot sim`: serve the local NemoVideo API simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from backend.sim import SimConfig, Simulator

# The simulator's knobs a developer turns most: flag, type, default, what it sets.
_TUNABLES: tuple[tuple[str, type, object, str], ...] = (
    ("--render-seconds", float, SimConfig.render_seconds, "how long a render takes"),
    ("--credits", int, SimConfig.initial_credits, "credits of a new anonymous user"),
    (
        "--no-text-every",
        int,
        SimConfig.no_text_every,
        "every Nth edit turn ends without text; 0 never",
    ),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=port_number, default=8088, help="port to listen on (default 8088)"
    )
    p.add_argument("--seed", type=int, default=SimConfig.seed, help="seed for ids and choices")
    for flag, kind, default, text in _TUNABLES:
        p.add_argument(flag, type=kind, default=default, help=f"{text} (default %(default)s)")
    p.add_argument(
        "--operator-token", default=None, help="also accept this token as a registered user"
    )


def port_number(text: str) -> int:
    """A TCP port, 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (0-65535)")
    return port


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        seed=args.seed,
        render_seconds=args.render_seconds,
        initial_credits=args.credits,
        no_text_every=args.no_text_every,
        operator_token=args.operator_token,
    )


async def serve(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Runs the simulator until `stop` is set or SIGINT/SIGTERM arrives."""
    sim = Simulator(config_from_args(args))
    url = await sim.start(args.host, args.port)
    print(f"NemoVideo simulator listening on {url} (seed {args.seed}); Ctrl-C stops it", flush=True)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(args: argparse.Namespace) -> int:
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"nemobot sim: cannot listen on {args.host}:{args.port} ({reason})", file=sys.stderr)
        return 1
    return 0
