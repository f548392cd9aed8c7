"""Draft JSON → words: a timeline summary, what changed in a turn, whether it can export.

The draft schema is only partly known (`t` tracks, `tt` type, `sg` segments, `d`
duration in ms, `m` metadata); everything here reads what it understands and ignores
the rest, and never raises on odd input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TYPE_NAMES = {
    "en": {0: "Video", 1: "BGM", 7: "Title"},
    "zh": {0: "视频", 1: "背景音乐", 7: "标题"},
}
_OTHER = {"en": "Track", "zh": "轨道"}
_NAME_KEYS = ("n", "name", "title", "label", "desc", "description", "prompt", "src", "url")
_TEXT_KEYS = ("text", "tx", "content", "c", "n", "name", "title")
_START_KEYS = ("s", "st", "start", "ts", "offset")
_VOLUME_KEYS = ("v", "vol", "volume")
_WORDS = {
    "en": {
        "empty": "Timeline is empty.",
        "head": "Timeline ({n} track{s}):",
        "no_segments": "empty",
        "clips": "{n} clips",
        "added": "Added {what}.",
        "removed": "Removed {what}.",
        "changed": "Changed {what}.",
        "canvas": "Canvas set to {w}×{h}.",
        "title_meta": 'Project title set to "{t}".',
        "updated": "The project was updated.",
        "sep": " ",
        "colon": ": ",
        "quote": '"{t}"',
        "secs": "{a}-{b}s",
    },
    "zh": {
        "empty": "时间线为空。",
        "head": "时间线（{n} 条轨道）：",
        "no_segments": "空",
        "clips": "{n} 个片段",
        "added": "已添加{what}。",
        "removed": "已移除{what}。",
        "changed": "已修改{what}。",
        "canvas": "画布已设为 {w}×{h}。",
        "title_meta": "项目标题已设为“{t}”。",
        "updated": "项目已更新。",
        "sep": "",
        "colon": "：",
        "quote": "“{t}”",
        "secs": "{a}-{b}秒",
    },
}


def _lang(lang: str | None) -> str:
    return "zh" if (lang or "").lower().startswith("zh") else "en"


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None
    return None


def _seconds(ms: float) -> str:
    value = round(ms / 1000, 1)
    return str(int(value)) if value == int(value) else f"{value:g}"


def _tracks(draft: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not isinstance(draft, Mapping):
        return []
    tracks = draft.get("t")
    if not isinstance(tracks, Sequence) or isinstance(tracks, str | bytes):
        return []
    return [track for track in tracks if isinstance(track, Mapping)]


def _segments(track: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    segments = track.get("sg")
    if not isinstance(segments, Sequence) or isinstance(segments, str | bytes):
        return []
    return [seg for seg in segments if isinstance(seg, Mapping)]


def _first_text(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if key in ("src", "url"):
                text = text.rstrip("/").rsplit("/", 1)[-1]
            return text[:60]
        if isinstance(value, Mapping):
            inner = _first_text(value, ("text", "name", "title"))
            if inner:
                return inner
    return None


@dataclass(frozen=True, slots=True)
class _TrackView:
    """What a track means to a reader, used both for summaries and for diffs."""

    kind: int | None
    label: str | None
    segments: int
    start_ms: float | None
    end_ms: float | None
    volume: int | None

    def describe(self, lang: str) -> str:
        words = _WORDS[lang]
        names = _TYPE_NAMES[lang]
        type_name = names.get(self.kind, _OTHER[lang]) if self.kind is not None else _OTHER[lang]
        if self.segments == 0:
            return f"{type_name}{words['colon']}{words['no_segments']}"
        if self.label and self.kind == 7:
            what = words["quote"].format(t=self.label)
        elif self.label and self.segments == 1:
            what = self.label
        elif self.label:
            what = f"{self.label} (+{self.segments - 1})"
        elif self.segments > 1:
            what = words["clips"].format(n=self.segments)
        else:
            what = ""
        extras: list[str] = []
        if self.start_ms is not None and self.end_ms is not None:
            extras.append(words["secs"].format(a=_seconds(self.start_ms), b=_seconds(self.end_ms)))
        if self.volume is not None:
            extras.append(f"{self.volume}%")
        text = f"{type_name}{words['colon']}{what}" if what else type_name
        if extras:
            joiner = "，" if lang == "zh" else ", "
            text = f"{text} ({joiner.join(extras)})"
        return text


def _meta_of(node: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = node.get("m")
    return meta if isinstance(meta, Mapping) else {}


def _label(kind: int | None, segments: list[Mapping[str, Any]], track: Mapping[str, Any]) -> str:
    """The first readable name: the segment's own fields, its metadata, then the track's."""
    keys = _TEXT_KEYS if kind == 7 else _NAME_KEYS
    plain = tuple(k for k in keys if k not in ("src", "url"))
    meta_keys = ("text", "title", "name") if kind == 7 else ("title", "name", "text", "prompt")
    for seg in segments:
        found = _first_text(seg, plain) or _first_text(_meta_of(seg), meta_keys)
        if found:
            return found
    found = _first_text(track, plain) or _first_text(_meta_of(track), meta_keys)
    if found:
        return found
    for seg in segments:
        found = _first_text(seg, ("src", "url"))
        if found:
            return found
    return ""


def _volume(nodes: list[Mapping[str, Any]]) -> int | None:
    for node in nodes:
        for source in (node, _meta_of(node)):
            for key in _VOLUME_KEYS:
                level = _num(source.get(key))
                if level is not None:
                    return round(level * 100) if level <= 1 else round(level)
    return None


def _view(track: Mapping[str, Any]) -> _TrackView:
    raw_kind = _num(track.get("tt"))
    kind = int(raw_kind) if raw_kind is not None else None
    segments = _segments(track)
    start: float | None = None
    end: float | None = None
    cursor = 0.0
    for seg in segments:
        duration = _num(seg.get("d"))
        seg_start = next(
            (v for v in (_num(seg.get(k)) for k in _START_KEYS) if v is not None), None
        )
        if seg_start is None:
            seg_start = cursor
        if duration is not None and duration >= 0:
            seg_end = seg_start + duration
            start = seg_start if start is None else min(start, seg_start)
            end = seg_end if end is None else max(end, seg_end)
            cursor = seg_end
    volume = _volume([*segments, track]) if kind == 1 else _volume(segments)
    label = _label(kind, segments, track) or None
    return _TrackView(kind, label, len(segments), start, end, volume)


def summarize_draft(draft: Mapping[str, Any] | None, lang: str = "en") -> str:
    """`Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%) …`"""
    lang = _lang(lang)
    words = _WORDS[lang]
    views = [_view(track) for track in _tracks(draft)]
    if not views:
        return words["empty"]
    head = words["head"].format(n=len(views), s="" if len(views) == 1 else "s")
    items = " ".join(f"{i}. {view.describe(lang)}" for i, view in enumerate(views, 1))
    return f"{head} {items}" if lang == "en" else f"{head}{items}"


def _meta(draft: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(draft, Mapping) and isinstance(draft.get("m"), Mapping):
        meta: Mapping[str, Any] = draft["m"]
        return meta
    return {}


def canvas_of(draft: Mapping[str, Any] | None, config: Any = None) -> tuple[int, int] | None:
    """The project's canvas (width, height) in pixels: the state's `canvas_config` when it
    has one, else the draft's metadata; None when neither says."""
    for source in (config if isinstance(config, Mapping) else {}, _meta(draft)):
        w, h = _num(source.get("width")), _num(source.get("height"))
        if w is not None and h is not None and w > 0 and h > 0:
            return round(w), round(h)
    return None


def describe_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, lang: str = "en"
) -> str | None:
    """A short sentence on what a turn changed in the draft; None when nothing did."""
    if _same(before, after):
        return None
    lang = _lang(lang)
    words = _WORDS[lang]
    old = [_view(track) for track in _tracks(before)]
    new = [_view(track) for track in _tracks(after)]
    notes: list[str] = []
    # Pair tracks of the same type in order; the leftovers were added or removed.
    kinds = list(dict.fromkeys([v.kind for v in old] + [v.kind for v in new]))
    for kind in kinds:
        was = [v for v in old if v.kind == kind]
        now = [v for v in new if v.kind == kind]
        for a, b in zip(was, now, strict=False):
            if a != b:
                notes.append(words["changed"].format(what=b.describe(lang)))
        for b in now[len(was) :]:
            notes.append(words["added"].format(what=b.describe(lang)))
        for a in was[len(now) :]:
            notes.append(words["removed"].format(what=a.describe(lang)))
    old_meta, new_meta = _meta(before), _meta(after)
    w, h = new_meta.get("width"), new_meta.get("height")
    if (w, h) != (old_meta.get("width"), old_meta.get("height")) and _num(w) and _num(h):
        notes.append(words["canvas"].format(w=_seconds_free(w), h=_seconds_free(h)))
    title = new_meta.get("title")
    if isinstance(title, str) and title and title != old_meta.get("title"):
        notes.append(words["title_meta"].format(t=title[:60]))
    if not notes:
        return words["updated"]
    return words["sep"].join(notes)


def _seconds_free(value: Any) -> str:
    number = _num(value) or 0
    return str(int(number)) if number == int(number) else f"{number:g}"


def _same(before: Any, after: Any) -> bool:
    """Equal drafts, with None and an empty draft counted as the same."""
    try:
        return bool((before or None) == (after or None))
    except Exception:  # exotic objects with an odd __eq__ or __bool__
        return before is after


def is_exportable(draft: Mapping[str, Any] | None) -> bool:
    """Some track has at least one segment."""
    return any(_segments(track) for track in _tracks(draft))
