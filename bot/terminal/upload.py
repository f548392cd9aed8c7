"""`/upload PATH… [message]` in the terminal: which words are files, which the message."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import shlex
from pathlib import Path

from bot.io import Attachment

__all__ = ["attachment", "parse_upload"]


def parse_upload(arg: str) -> tuple[list[Path], str, list[str]]:
    """`/upload a.jpg "my clip.mp4" animate it` → (files, text, missing paths).

    Leading words that name files are files (a path with spaces may be quoted, escaped or
    typed as it is); the rest is the message."""
    try:
        words = shlex.split(arg)
    except ValueError:
        words = arg.split()
    files: list[Path] = []
    missing: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith(("http://", "https://")):
            break
        found = _longest_path(words, i)
        if found is not None:
            path, i = found
            files.append(path)
            continue
        if "." in word or "/" in word or os.sep in word:
            missing.append(word)
            i += 1
            continue
        break
    return files, " ".join(words[i:]), missing


def _longest_path(words: list[str], start: int) -> tuple[Path, int] | None:
    """The file named by the most words from `start` on, and the index after them."""
    for end in range(len(words), start, -1):
        path = Path(" ".join(words[start:end])).expanduser()
        if path.is_file():
            return path, end
    return None


def attachment(path: Path) -> Attachment:
    mime, _ = mimetypes.guess_type(path.name)

    async def read() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return Attachment(name=path.name, mime=mime, size=path.stat().st_size, read=read)
