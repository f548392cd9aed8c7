"""Length and picture size read from an MP4's own header, for a video about to be uploaded:
what the file says beats what the project meant it to be.

Only the boxes needed are read (`moov` → `mvhd` for the length, `trak` → `tkhd` for the
picture size); anything odd gives None rather than an error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Mp4Info", "probe_mp4"]


@dataclass(frozen=True)
class Mp4Info:
    duration_s: float | None
    width: int | None
    height: int | None


def probe_mp4(data: bytes) -> Mp4Info | None:
    """The file's length and the size of its (first) picture track; None when not an MP4."""
    moov = next((body for kind, body in _boxes(data, 0, len(data)) if kind == b"moov"), None)
    if moov is None:
        return None
    start, end = moov
    duration: float | None = None
    width = height = None
    for kind, (body, body_end) in _boxes(data, start, end):
        if kind == b"mvhd":
            duration = _mvhd_seconds(data, body, body_end)
        elif kind == b"trak" and width is None:
            for inner, (at, inner_end) in _boxes(data, body, body_end):
                if inner == b"tkhd" and inner_end - at >= 84:
                    w, h = struct.unpack(">II", data[inner_end - 8 : inner_end])
                    if w >> 16 and h >> 16:  # 16.16 fixed point; audio tracks say 0 × 0
                        width, height = w >> 16, h >> 16
    return Mp4Info(duration, width, height)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, tuple[int, int]]]:
    """(type, (body start, body end)) of each box between `start` and `end`."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1 and at + 16 <= end:
            size, header = struct.unpack(">Q", data[at + 8 : at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, (at + header, at + size)
        at += size


def _mvhd_seconds(data: bytes, start: int, end: int) -> float | None:
    version = data[start] if start < end else -1
    if version == 0 and end - start >= 20:
        scale, length = struct.unpack(">II", data[start + 12 : start + 20])
    elif version == 1 and end - start >= 32:
        scale, length = struct.unpack(">IQ", data[start + 20 : start + 32])
    else:
        return None
    return length / scale if scale else None
