"""What every benchmark shares: a description of the machine, and its section of RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or "unknown"


def machine() -> str:
    """`<OS>, <CPU> (<n> cores), Python <version>`, for the line above each table."""
    return (
        f"{platform.platform()}, {cpu_model()} ({os.cpu_count()} cores), "
        f"Python {platform.python_version()}"
    )


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_section(name: str, body: str) -> None:
    """Replace the `## <name>` section of RESULTS.md (or append it), leaving the others."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: section + "\n", old, count=1).rstrip() + "\n"
    else:
        new = old.rstrip() + "\n\n" + section
    RESULTS.write_text(new, encoding="utf-8")
