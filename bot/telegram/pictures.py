"""Pictures the bot draws itself with Pillow: the timeline shown with /status, and video
thumbnails as Telegram takes them. Both are CPU work: callers run them in a thread.

Track and segment names may be Chinese, so text is set in Noto Sans CJK (shipped by the
`manimgx-fonts-cjk` package), which has Latin and CJK glyphs alike.
"""

from __future__ import annotations

import io
import logging
import os
from functools import cache

import manimgx_fonts_cjk
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from bot.texts import fmt_elapsed, t
from bot.timeline import Kind, Timeline

__all__ = ["KIND_COLOURS", "font_path", "thumbnail_jpeg", "timeline_png"]

log = logging.getLogger(__name__)

KIND_COLOURS: dict[Kind, tuple[int, int, int]] = {
    "video": (59, 130, 246),
    "audio": (16, 185, 129),
    "text": (245, 158, 11),
    "other": (139, 92, 246),
}
_BACKGROUND = (30, 34, 44)
_LANE = (42, 48, 62)
_INK = (230, 233, 239)
_MUTED = (150, 158, 175)
_WIDTH = 960
_PAD = 24
_LABEL_W = 112
_HEADER_H = 40
_RULER_H = 30
_ROW_H = 58
_ROW_GAP = 10
_SC_INDEX = 2  # Simplified Chinese in Noto's collection; Latin is the same in each face
_THUMB_SIDE = 320
_THUMB_BYTES = 200 * 1024


@cache
def font_path() -> str | None:
    """Noto Sans CJK from its package, or None (then Pillow's own font: no CJK glyphs)."""
    path = os.path.join(os.path.dirname(manimgx_fonts_cjk.__file__), "NotoSansCJK-VF.otf.ttc")
    if not os.path.exists(path):
        log.warning("the CJK font is missing: Chinese names will not render")
        return None
    return path


def _font(size: int, weight: str = "Regular") -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    if path is None:
        return ImageFont.load_default(size)
    # Chinese and Latin need no shaping: the basic layout is several times faster.
    font = ImageFont.truetype(path, size, index=_SC_INDEX, layout_engine=ImageFont.Layout.BASIC)
    font.set_variation_by_name(weight)
    return font


def timeline_png(timeline: Timeline, lang: str) -> bytes:
    """One row per track, coloured by kind, its segments to scale with names and times,
    under a time ruler."""
    rows = max(1, len(timeline.tracks))
    top = _PAD + _HEADER_H + _RULER_H
    height = top + rows * (_ROW_H + _ROW_GAP) - _ROW_GAP + _PAD
    image = Image.new("RGB", (_WIDTH, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    title, label, small, name = _font(20, "Bold"), _font(15, "Medium"), _font(13), _font(15, "Bold")
    length = max(timeline.duration_s, 1.0)
    left, right = _PAD + _LABEL_W, _WIDTH - _PAD

    def x_at(seconds: float) -> float:
        return left + (right - left) * min(max(seconds, 0.0), length) / length

    count = len(timeline.tracks)
    tracks = t("tl_tracks_one", lang) if count == 1 else t("tl_tracks_many", lang, n=count)
    heading = t("tl_heading", lang, tracks=tracks)
    draw.text((_PAD, _PAD), f"{heading} · {fmt_elapsed(timeline.duration_s)}", _INK, title)
    ruler_y = _PAD + _HEADER_H
    step = _tick_step(length)
    tick = 0.0
    while tick <= length + 1e-9:
        x = x_at(tick)
        draw.line([(x, ruler_y + 18), (x, height - _PAD)], (52, 58, 74), 1)
        draw.text((x, ruler_y + 8), _tick_label(tick, length), _MUTED, small, anchor="mm")
        tick += step
    for index, track in enumerate(timeline.tracks):
        y0 = top + index * (_ROW_H + _ROW_GAP)
        y1 = y0 + _ROW_H
        colour = KIND_COLOURS[track.kind]
        draw.rounded_rectangle([(_PAD, y0), (right, y1)], 8, _LANE)
        draw.rounded_rectangle([(_PAD, y0), (_PAD + 6, y1)], 3, colour)
        draw.text((_PAD + 16, (y0 + y1) / 2), t(f"tl_{track.kind}", lang), _INK, label, anchor="lm")
        for seg in track.segments:
            a, b = x_at(seg.start_s), x_at(seg.end_s)
            b = max(b, a + 4)
            draw.rounded_rectangle([(a + 1, y0 + 5), (b - 1, y1 - 5)], 6, colour)
            room = b - a - 14
            caption = _fit(seg.name, name, room)
            times = _fit(f"{_seconds(seg.start_s)}–{_seconds(seg.end_s)}s", small, room)
            if caption:
                draw.text((a + 7, y0 + 9), caption, (255, 255, 255), name)
            if times:
                draw.text((a + 7, y0 + 32), times, (235, 240, 255), small)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # a few kB more, several times faster
    return out.getvalue()


def _tick_step(length: float) -> float:
    """A round step that puts at most ten ticks on the ruler."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if length / step <= 10:
            return float(step)
    return length / 10


def _tick_label(seconds: float, length: float) -> str:
    if length < 60:
        return f"{_seconds(seconds)}s"
    return fmt_elapsed(seconds)


def _seconds(value: float) -> str:
    rounded = round(value, 1)
    return f"{rounded:g}"


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, room: float) -> str:
    """`text`, cut with an ellipsis to fit `room` pixels; empty when not even that fits."""
    if room <= 0 or not text:
        return ""
    if font.getlength(text) <= room:
        return text
    low, high = 0, len(text) - 1  # the longest prefix that fits with "…", found by halving
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle].rstrip() + "…") <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…" if low else ""


def thumbnail_jpeg(data: bytes) -> bytes | None:
    """An image as a video thumbnail Telegram accepts (JPEG, 320 px, under 200 kB)."""
    try:
        with Image.open(io.BytesIO(data)) as source:
            image = source.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    image.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
    for quality in (85, 70, 50):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        if out.tell() <= _THUMB_BYTES:
            return out.getvalue()
    return None
