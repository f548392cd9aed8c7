"""The project's draft as a timeline people can picture: tracks by kind, named segments in
seconds, the canvas and the whole length.

The draft schema is only partly known (`t` tracks, `tt` type, `sg` segments, `st` start
and `d` duration in ms, `m` metadata); this reads what it understands, ignores the rest
and never raises on odd input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["Canvas", "Kind", "Segment", "Timeline", "Track", "timeline_of"]

Kind: TypeAlias = Literal["video", "audio", "text", "other"]

_KINDS: dict[int, Kind] = {0: "video", 1: "audio", 7: "text"}
_START_KEYS = ("st", "s", "start", "ts", "offset")
_NAME_KEYS = ("n", "name", "title", "text", "label", "prompt")
_TEXT_KEYS = ("text", "tx", "content", "title", "name", "n")


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    name: str


@dataclass(frozen=True)
class Track:
    kind: Kind
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int

    @property
    def aspect(self) -> str:
        """`16:9`, `9:16`, `1:1`… as editors name it."""
        divisor = math.gcd(self.width, self.height) or 1
        return f"{self.width // divisor}:{self.height // divisor}"


@dataclass(frozen=True)
class Timeline:
    tracks: tuple[Track, ...]
    canvas: Canvas | None
    duration_s: float

    @property
    def empty(self) -> bool:
        return not any(track.segments for track in self.tracks)


def timeline_of(draft: Mapping[str, Any] | None) -> Timeline:
    """What the draft holds, in seconds; tracks without a readable kind are `other`."""
    if not isinstance(draft, Mapping):
        return Timeline((), None, 0.0)
    tracks = tuple(_track(raw) for raw in _mappings(draft.get("t")))
    ends = [seg.end_s for track in tracks for seg in track.segments]
    total = _number(draft.get("d"))
    duration = max([*ends, (total or 0) / 1000, 0.0])
    return Timeline(tracks, _canvas(_meta(draft)), duration)


def _track(raw: Mapping[str, Any]) -> Track:
    kind_code = _number(raw.get("tt"))
    kind = _KINDS.get(int(kind_code), "other") if kind_code is not None else "other"
    keys = _TEXT_KEYS if kind == "text" else _NAME_KEYS
    fallback = _text(raw, keys) or _text(_meta(raw), keys) or ""
    segments = []
    cursor = 0.0
    for seg in _mappings(raw.get("sg")):
        start = next((v for v in (_number(seg.get(k)) for k in _START_KEYS) if v is not None), None)
        start_ms = cursor if start is None else max(0.0, start)
        duration = _number(seg.get("d"))
        end_ms = start_ms + max(0.0, duration or 0.0)
        cursor = end_ms
        name = _text(seg, keys) or _text(_meta(seg), keys) or _source_name(seg) or fallback
        segments.append(Segment(start_ms / 1000, end_ms / 1000, name))
    return Track(kind, tuple(segments))


def _canvas(meta: Mapping[str, Any]) -> Canvas | None:
    width, height = _number(meta.get("width")), _number(meta.get("height"))
    if not width or not height or width < 1 or height < 1:
        return None
    return Canvas(int(width), int(height))


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _meta(node: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = node.get("m")
    return meta if isinstance(meta, Mapping) else {}


def _text(node: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = node.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:80]
    return None


def _source_name(seg: Mapping[str, Any]) -> str | None:
    for key in ("src", "url"):
        value = seg.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().rstrip("/").rsplit("/", 1)[-1][:80]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
