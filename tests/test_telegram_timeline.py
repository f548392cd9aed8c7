"""The timeline as a picture: /status and the Status button answer with it (sendPhoto on the
fake Bot API server, from the real bot and simulator), one row per track coloured by kind,
Chinese names in real glyphs, and the drawing close to a reference image.

After a deliberate change of the drawing, write a new reference (and the README's example)
with `python -m tests.test_telegram_timeline`.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageFont

from bot.telegram.pictures import KIND_COLOURS, font_path, timeline_png
from bot.timeline import Kind, timeline_of
from tests import telegram_fixtures
from tests.fake_botapi import BotMessage
from tests.telegram_fixtures import HarnessFactory, bot_with_a_project

make_bot = telegram_fixtures.make_bot

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "timeline-reference.png"
EXAMPLE = ROOT / "docs" / "timeline-example.png"

# A project as the agent leaves it: two clips, music under both, a title over the start.
DRAFT: dict[str, Any] = {
    "d": 15000,
    "m": {"title": "Urban Dreams", "width": 1080, "height": 1920, "fps": 30},
    "t": [
        {
            "tt": 0,
            "sg": [
                {"st": 0, "d": 6000, "m": {"title": "City at night, neon reflections"}},
                {"st": 6000, "d": 9000, "m": {"title": "城市夜景延时摄影"}},
            ],
        },
        {"tt": 1, "sg": [{"st": 0, "d": 15000, "m": {"title": "Lo-fi Chill", "volume": 35}}]},
        {"tt": 7, "sg": [{"st": 0, "d": 3000, "m": {"text": "Urban Dreams 都市之梦"}}]},
    ],
}


def rows_of(png: bytes, x: int = 140) -> list[Kind]:
    """The kinds of the coloured bands crossed going down the picture at `x`."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = {colour: kind for kind, colour in KIND_COLOURS.items()}
    bands: list[Kind] = []
    run: tuple[Kind, int] | None = None
    for y in range(image.height):
        pixel = image.getpixel((x, y))
        kind = colours.get(pixel) if isinstance(pixel, tuple) else None
        if kind is not None and run is not None and run[0] == kind:
            run = (kind, run[1] + 1)
            continue
        if run is not None and run[1] >= 20:
            bands.append(run[0])
        run = (kind, 1) if kind is not None else None
    if run is not None and run[1] >= 20:
        bands.append(run[0])
    return bands


def offers(message: BotMessage, data: str) -> bool:
    return data in [b.get("callback_data") for b in message.buttons]


def photo_bytes(bot_api: Any, message: BotMessage) -> bytes:
    assert message.media is not None
    data: bytes = bot_api.files[message.media[-1]["file_id"]].data
    return data


async def test_status_and_its_button_answer_with_the_timeline_picture(
    make_bot: HarnessFactory,
) -> None:
    bot, ann = await bot_with_a_project(make_bot, 1901)
    api = bot.api
    for ask in ("add lo-fi background music", "add the title Hello Urban"):
        mark = len(api.sent(ann.id))
        api.send_text(ann, ask)
        await api.wait_for(
            lambda m=mark: any(x.buttons for x in api.sent(ann.id, "text")[m:]), 30, ask
        )
    mark, mark_text = len(api.sent(ann.id)), len(api.sent(ann.id, "text"))
    api.send_command(ann, "status")
    status = await bot.text_with(ann.id, "📋", after=mark_text)
    (photo,) = [m for m in api.sent(ann.id)[mark:] if m.kind == "photo"]
    assert photo.created_at <= status.created_at, "the picture comes with the text, first"
    assert photo.text.startswith("🖼 Canvas 1080×1920 (9:16) · 0:")
    png = photo_bytes(api, photo)
    assert png.startswith(b"\x89PNG")
    assert rows_of(png) == ["video", "audio", "text"]
    assert len(api.calls_of("sendPhoto", ok=True)) == 1

    menu = next(m for m in api.sent(ann.id) if offers(m, "a:status"))
    api.press(ann, menu, "a:status")
    await api.wait_for(lambda: len(api.calls_of("sendPhoto", ok=True)) == 2, 15, "a second picture")


async def test_a_chinese_chat_gets_chinese_labels(make_bot: HarnessFactory) -> None:
    bot, li = await bot_with_a_project(make_bot, 1902, "zh")
    api = bot.api
    mark = len(api.sent(li.id))
    api.send_text(li, "时间线上有什么")
    await api.wait_for(lambda: [m for m in api.sent(li.id)[mark:] if m.kind == "photo"], 20)
    (photo,) = [m for m in api.sent(li.id)[mark:] if m.kind == "photo"]
    assert photo.text.startswith("🖼 画布 1080×1920（9:16）")
    assert rows_of(photo_bytes(api, photo)) == ["video"]


def test_the_picture_has_a_row_per_track_in_the_order_of_the_project() -> None:
    png = timeline_png(timeline_of(DRAFT), "en")
    assert rows_of(png) == ["video", "audio", "text"]
    audio_only = {"t": [{"tt": 1, "sg": [{"d": 4000, "n": "drums"}]}]}
    assert rows_of(timeline_png(timeline_of(audio_only), "en")) == ["audio"]


def test_chinese_names_are_drawn_in_real_glyphs_not_boxes() -> None:
    path = font_path()
    assert path is not None, "the CJK font ships with the package"
    font = ImageFont.truetype(path, 24, index=2)
    missing = bytes(font.getmask("\U000e01ef"))  # a code point no font draws: the box
    for text in ("视", "频", "夜", "景"):
        glyph = bytes(font.getmask(text))
        assert glyph and glyph != missing, text
        assert any(glyph), text


def test_the_picture_matches_the_reference_within_a_tolerance() -> None:
    drawn = Image.open(io.BytesIO(timeline_png(timeline_of(DRAFT), "zh"))).convert("RGB")
    reference = Image.open(REFERENCE).convert("RGB")
    assert drawn.size == reference.size
    diff = ImageChops.difference(drawn, reference).convert("L")
    changed = sum(diff.histogram()[49:])
    assert changed / (drawn.width * drawn.height) < 0.01, f"{changed} pixels differ"


def write_references() -> None:
    REFERENCE.write_bytes(timeline_png(timeline_of(DRAFT), "zh"))
    EXAMPLE.parent.mkdir(exist_ok=True)
    EXAMPLE.write_bytes(timeline_png(timeline_of(DRAFT), "en"))


if __name__ == "__main__":
    write_references()
    sys.exit(0)
