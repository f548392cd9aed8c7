"""Small pure helpers the conversation uses to read and word messages: commands, hints,
the reply language, snippets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.io import Button
from bot.texts import normalize_lang, script_lang, t
from router import ExportOptions, Intent, classify, detect_lang

__all__ = [
    "asks_for_export",
    "button",
    "command_of",
    "draft_of",
    "export_notes",
    "formats",
    "is_cancel_word",
    "menu",
    "pick_lang",
    "snippet",
    "tool_hint",
]

_TOOL_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("video", "animate", "animation", "clip", "motion"), "tool_video"),
    (("image", "photo", "picture", "img"), "tool_image"),
    (("music", "audio", "bgm", "sound", "song", "voice", "tts"), "tool_audio"),
    (("title", "text", "caption", "subtitle"), "tool_text"),
    (("analy", "inspect", "understand", "describe"), "tool_analyze"),
    (("edit", "track", "timeline", "cut", "trim", "draft"), "tool_edit"),
)


def tool_hint(name: str, lang: str) -> str:
    """A progress line for a tool call, so the user sees what happens without the internals."""
    low = name.lower()
    for words, key in _TOOL_HINTS:
        if any(w in low for w in words):
            return t(key, lang)
    return t("tool_other", lang)


def snippet(text: str, limit: int = 40) -> str:
    """The start of a message, to remind the user which one is meant."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def command_of(text: str) -> tuple[str, str] | None:
    """`("lang", "zh")` for `/lang@SomeBot zh`; None when the text is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, rest = stripped[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name.isascii() or not name.replace("_", "").isalnum():
        return None
    return name, rest.strip()


def pick_lang(
    *,
    stored: str | None,
    locked: bool,
    language_code: str | None,
    text: str,
) -> str:
    """The reply language: the /lang override, else Chinese when the message or the user's
    Telegram language is (the message's script choosing Simplified or Traditional), else
    English when the message clearly is, else what the chat used before."""
    if locked and stored:
        return normalize_lang(stored)
    body = text.strip()
    detected = detect_lang(body) if body and command_of(body) is None else None
    if detected in ("zh", "mixed"):
        # A text both scripts write alike keeps the chat's Chinese, else the user's.
        chinese = [normalize_lang(c) for c in (stored, language_code) if c]
        return script_lang(body, next((c for c in chinese if c != "en"), "zh"))
    if language_code and normalize_lang(language_code) != "en":
        known = normalize_lang(stored)
        return known if known != "en" else normalize_lang(language_code)
    if detected == "en" and len(body.split()) >= 3:
        return "en"
    if stored:
        return normalize_lang(stored)
    return normalize_lang(language_code)


_CLAUSES = re.compile(r"[,，;；.。!！?？]|\b(?:and|then|also)\b|然后|接着|并且|再", re.IGNORECASE)


def asks_for_export(text: str) -> bool:
    """True when one clause of the message is itself an export request ("…, then export"):
    the router keeps such mixed messages for the agent, yet the user did ask for the file."""
    return any(
        classify(part).intent is Intent.EXPORT
        for part in _CLAUSES.split(text)
        if part and part.strip()
    )


_CANCEL_WORDS = frozenset({"stop", "cancel", "取消", "停止", "停"})


def is_cancel_word(text: str) -> bool:
    """ "stop" or 取消 as the whole message means /cancel."""
    return text.strip().strip("!！.。").casefold() in _CANCEL_WORDS


def draft_of(value: Any) -> dict[str, Any] | None:
    """A draft as stored: a plain dict, or None when the value is not one."""
    if isinstance(value, Mapping):
        return dict(value)
    return None


def button(action: str, lang: str) -> Button:
    """The button for one of the bot's actions (export, status, credits, new)."""
    return Button(t(f"btn_{action}", lang), data=f"a:{action}")


def menu(lang: str) -> tuple[Button, ...]:
    """The buttons under a welcome: what a newcomer most likely wants next."""
    return (button("status", lang), button("credits", lang))


def formats(extensions: Sequence[str]) -> str:
    """Accepted file types as a user reads them: `jpg png mp4`."""
    return " ".join(e.lstrip(".") for e in extensions)


_ASPECT_WORDS = {
    "9:16": ("vertical (9:16)", "竖屏（9:16）"),
    "16:9": ("landscape (16:9)", "横屏（16:9）"),
    "1:1": ("square (1:1)", "方形（1:1）"),
    "4:5": ("4:5", "4:5"),
}
_RESOLUTION_SIDE = {"480p": 480, "720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160}


def export_notes(options: ExportOptions, canvas: tuple[int, int] | None, lang: str) -> list[str]:
    """What an export request asked that the export call cannot set, in one line each: the
    size and shape come from the project's canvas (said, with how to change it) and the
    file is always MP4. Nothing when the request and the project agree."""
    notes: list[str] = []
    zh = normalize_lang(lang) == "zh"
    asked: list[str] = []
    if options.aspect is not None and not _same_aspect(options.aspect, canvas):
        asked.append(_ASPECT_WORDS[options.aspect][zh])
    if options.resolution is not None and not _same_side(options.resolution, canvas):
        asked.append("4K" if options.resolution == "2160p" else options.resolution)
    if asked:
        shown = f"{canvas[0]}×{canvas[1]}" if canvas else t("export_canvas_unknown", lang)
        ask = t("export_ask", lang, what=("" if zh else " ").join(asked))
        notes.append(t("export_canvas", lang, canvas=shown, ask=ask))
    if options.format is not None and options.format != "mp4":
        notes.append(t("export_format", lang, asked=options.format.upper()))
    return notes


def _same_aspect(aspect: str, canvas: tuple[int, int] | None) -> bool:
    if canvas is None:
        return False
    w, h = (int(x) for x in aspect.split(":"))
    return abs(canvas[0] / canvas[1] - w / h) < 0.02


def _same_side(resolution: str, canvas: tuple[int, int] | None) -> bool:
    return canvas is not None and min(canvas) == _RESOLUTION_SIDE[resolution]
