"""The scripted video agent: one user message -> tool steps, draft edits and a reply.

Pure and seeded, so a conversation with the simulator always unfolds the same way. It
recognises a handful of requests in English and Chinese (generate/animate, title, music,
export, preview) and answers anything else with a short help text.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

TT_VIDEO, TT_AUDIO, TT_TEXT = 0, 1, 7

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_STRONG_VIDEO = (
    "animate",
    "make a video",
    "make me a video",
    "create a video",
    "make a clip",
    "video of",
    "clip of",
    "timelapse",
    "动画",
    "动起来",
    "视频",
    "片段",
)
_WEAK_VIDEO = ("generate", "create", "make", "生成", "制作", "做一")
_TITLE = ("title", "caption", "字幕", "标题")
_MUSIC = ("music", "bgm", "soundtrack", "song", "音乐", "配乐")
_EXPORT = ("export", "render", "download", "导出", "渲染", "下载")
_PREVIEW = ("preview", "timeline", "show me", "预览", "时间线")

_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|「([^」]+)」|『([^』]+)』|(?:^|\s)\'([^\']+)\'')
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-\s*)?(?:seconds?\b|secs?\b|s\b|秒)", re.I)
_VOLUME = re.compile(r"(\d{1,3})\s*%")
_EN_TITLE = re.compile(
    r"(?:title|caption)s?\s*(?:saying|that says|which says|reading|called|of|:|-)?\s*(.+)$", re.I
)
_ZH_TITLE = re.compile(r"(?:标题|字幕)\s*(?:为|是|叫|写|:|：)?\s*(.+)$")
_EN_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:please\s+)?(?:can you\s+|could you\s+)?"
    r"(?:animate|generate|create|make|turn|produce)\s+(?:me\s+)?"
    r"(?:(?:this|the|a|an|my)\s+)?"
    r"(?:(?:\d+\s*(?:s|secs?|seconds?)\s+)?(?:photo|image|picture|video|clip|animation)\s*)?"
    r"(?:(?:of|about|showing|into|from)\s+)?(?:(?:a|an|the)\s+)?",
    re.I,
)
_EN_CUTS = re.compile(r"\s+(?:with|and|then|plus)\s+|[,.;!?]", re.I)
_ZH_NOISE = (
    "请",
    "帮我",
    "生成",
    "制作",
    "做成",
    "做一个",
    "做一段",
    "一个",
    "一段",
    "把",
    "这张",
    "照片",
    "图片",
    "视频",
    "动画",
    "动起来",
    "关于",
    "片段",
    "的",
)
_FILLER_SUBJECTS = {"", "it", "this", "video", "clip", "photo", "image", "picture", "animation"}
_TRACKS = (
    ("lo-fi", "lofi", "chill", "轻松", "舒缓"),
    ("piano", "钢琴"),
    ("upbeat", "energetic", "pop", "欢快", "动感"),
    ("epic", "cinematic", "史诗", "电影"),
)
_TRACK_TITLES = ("Lo-fi Chill", "Soft Piano", "Upbeat Pop", "Epic Cinematic")


@dataclass
class ToolStep:
    """One function call the agent makes, the answer it gets and the draft afterwards."""

    name: str
    args: dict[str, Any]
    response: dict[str, Any]
    seconds: float
    draft: dict[str, Any]


@dataclass
class TurnPlan:
    """What one message makes the agent do; the server decides whether the reply is spoken."""

    lang: str
    preamble: str
    steps: list[ToolStep] = field(default_factory=list)
    reply: str = ""
    cost: int = 0
    media: list[dict[str, Any]] = field(default_factory=list)

    @property
    def edits(self) -> bool:
        return bool(self.steps)


@dataclass(frozen=True)
class Source:
    """The media the agent would animate: the latest uploaded image, if any."""

    name: str
    url: str
    width: int | None = None
    height: int | None = None


def is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def reply_lang(session_lang: str, text: str) -> str:
    """Chinese when the session is Chinese or the message is; English otherwise."""
    return "zh" if session_lang.lower().startswith("zh") or is_chinese(text) else "en"


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


def plan_turn(
    text: str,
    *,
    session_lang: str,
    draft: dict[str, Any] | None,
    source: Source | None,
    rng: random.Random,
    generate_cost: int,
    generate_seconds: float,
    edit_seconds: float,
    media_base: str,
) -> TurnPlan:
    """Works out the turn for `text` against the current `draft` (which is not modified)."""
    lang = reply_lang(session_lang, text)
    low = text.lower()
    wants_title = _has(low, _TITLE)
    wants_music = _has(low, _MUSIC)
    wants_video = _has(low, _STRONG_VIDEO) or (
        _has(low, _WEAK_VIDEO) and not wants_title and not wants_music
    )
    plan = TurnPlan(lang=lang, preamble="正在处理…" if lang == "zh" else "Working on it… ")
    current: dict[str, Any] = copy.deepcopy(draft) if draft else {}
    current.setdefault("t", [])
    parts: list[str] = []
    if wants_video:
        seconds = _duration(text)
        subject = _subject(text, lang, source)
        media_id = f"gen_{rng.getrandbits(48):012x}"
        url = f"{media_base}/media/{media_id}.mp4"
        segment = {
            "id": f"seg_{rng.getrandbits(32):08x}",
            "d": int(seconds * 1000),
            "src": url,
            "m": {"title": subject, "width": 1080, "height": 1920, "prompt": text},
        }
        _append_video(current, segment)
        args: dict[str, Any] = {"prompt": text, "duration": seconds}
        if source is not None:
            args["source"] = source.url
        plan.steps.append(
            ToolStep(
                "generate_video",
                args,
                {"ok": True, "media_id": media_id, "duration": seconds, "url": url},
                generate_seconds,
                copy.deepcopy(current),
            )
        )
        plan.cost += generate_cost
        plan.media.append(
            {"id": media_id, "type": "video", "url": url, "prompt": text, "duration": seconds}
        )
        shown = f"{seconds:g}"
        parts.append(
            _in(
                lang,
                f"已生成 {shown} 秒的视频片段：{subject}。",
                f"Generated a {shown}s clip: {subject}.",
            )
        )
    if wants_music:
        title = _track_title(low, rng)
        volume = _volume(text)
        _edit_track(
            plan,
            current,
            TT_AUDIO,
            meta={"title": title, "volume": volume},
            length_ms=max(_video_ms(current), 10000),
            op={"op": "add_bgm", "title": title, "volume": volume},
            rng=rng,
            seconds=edit_seconds,
        )
        parts.append(
            _in(
                lang,
                f"已添加背景音乐“{title}”，音量 {volume}%。",
                f'Added background music "{title}" at {volume}% volume.',
            )
        )
    if wants_title:
        caption = _title_text(text, lang)
        _edit_track(
            plan,
            current,
            TT_TEXT,
            meta={"title": caption},
            segment_meta={"title": caption, "text": caption},
            length_ms=3000,
            op={"op": "add_title", "text": caption},
            rng=rng,
            seconds=edit_seconds,
        )
        parts.append(
            _in(lang, f"已添加标题“{caption}”（0-3 秒）。", f'Added the title "{caption}" (0-3s).')
        )
    if parts:
        if wants_video:
            parts.append(
                "可以在时间线中预览。" if lang == "zh" else "You can preview it in the timeline."
            )
        plan.reply = ("好的！" if lang == "zh" else "Done! ") + ("" if lang == "zh" else " ").join(
            parts
        )
        return plan
    plan.preamble = ""
    plan.reply = _chat_reply(low, lang, current)
    return plan


def _in(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def _chat_reply(low: str, lang: str, draft: dict[str, Any]) -> str:
    empty = not any(t.get("sg") for t in draft.get("t", []) if isinstance(t, dict))
    if _has(low, _EXPORT):
        if empty:
            return (
                "时间线还是空的：先上传一张照片，或者让我生成一段视频。"
                if lang == "zh"
                else "The timeline is still empty: upload a photo or ask me to generate a clip."
            )
        return (
            "点击右上角的“导出”按钮即可导出视频。"
            if lang == "zh"
            else "Your draft is ready: click the Export button at the top right to render it."
        )
    if _has(low, _PREVIEW):
        return (
            "打开时间线面板即可预览当前草稿。"
            if lang == "zh"
            else "Open the timeline panel to preview your current draft."
        )
    return (
        "我可以让照片动起来、生成视频片段、添加标题或背景音乐。你想做什么？"
        if lang == "zh"
        else "I can animate a photo, generate a clip, add a title or add background music. "
        "What would you like to make?"
    )


def _duration(text: str) -> float:
    found = _DURATION.search(text)
    seconds = float(found.group(1)) if found else 5.0
    return min(max(seconds, 1.0), 60.0)


def _volume(text: str) -> int:
    found = _VOLUME.search(text)
    return min(max(int(found.group(1)), 0), 100) if found else 35


def _quoted(text: str) -> str | None:
    found = _QUOTED.search(text)
    if not found:
        return None
    return next(g for g in found.groups() if g).strip() or None


def _title_text(text: str, lang: str) -> str:
    quoted = _quoted(text)
    if quoted:
        return quoted[:60]
    found = (_ZH_TITLE if is_chinese(text) else _EN_TITLE).search(text)
    caption = found.group(1) if found else ""
    caption = re.split(r"[,.;!?，。；！？]", caption)[0].strip()
    if caption:
        return caption[:60]
    return "我的视频" if lang == "zh" else "My Video"


def _subject(text: str, lang: str, source: Source | None) -> str:
    fallback = PurePosixPath(source.name).stem if source else None
    without_quotes = _QUOTED.sub(" ", text)
    if is_chinese(without_quotes):
        subject = _DURATION.sub("", without_quotes)
        for noise in _ZH_NOISE:
            subject = subject.replace(noise, "")
        subject = re.split(r"[，。；！？,.;!?、]|并且|然后|加上|配上|和", subject)[0].strip()
    else:
        subject = _EN_CUTS.split(without_quotes, maxsplit=1)[0]
        subject = _EN_SUBJECT_PREFIX.sub("", subject)
        subject = _DURATION.sub("", subject)
        subject = re.sub(r"\b(?:long|into|a|an|the)\b", " ", subject, flags=re.I)
        subject = " ".join(subject.split())
    if subject.lower() in _FILLER_SUBJECTS or len(subject) < 2:
        return fallback or ("生成的片段" if lang == "zh" else "generated clip")
    return subject[:60]


def _track_title(low: str, rng: random.Random) -> str:
    for words, title in zip(_TRACKS, _TRACK_TITLES, strict=True):
        if _has(low, words):
            return title
    return rng.choice(_TRACK_TITLES)


def _tracks(draft: dict[str, Any]) -> list[dict[str, Any]]:
    tracks: list[dict[str, Any]] = draft["t"]
    return tracks


def _video_ms(draft: dict[str, Any]) -> int:
    return sum(
        int(sg.get("d", 0))
        for t in _tracks(draft)
        if t.get("tt") == TT_VIDEO
        for sg in t.get("sg", [])
    )


def _append_video(draft: dict[str, Any], segment: dict[str, Any]) -> None:
    tracks = _tracks(draft)
    track = next((t for t in tracks if t.get("tt") == TT_VIDEO), None)
    if track is None:
        track = {"tt": TT_VIDEO, "m": {"title": segment["m"]["title"]}, "sg": []}
        tracks.insert(0, track)
    segment["st"] = _video_ms(draft)
    track["sg"].append(segment)
    _retime(draft)


def _edit_track(
    plan: TurnPlan,
    draft: dict[str, Any],
    tt: int,
    *,
    meta: dict[str, Any],
    length_ms: int,
    op: dict[str, Any],
    rng: random.Random,
    seconds: float,
    segment_meta: dict[str, Any] | None = None,
) -> None:
    """One `edit_multitrack` step: the track of type `tt` holds one new segment."""
    segment_id = f"seg_{rng.getrandbits(32):08x}"
    segment = {"id": segment_id, "d": length_ms, "m": segment_meta or dict(meta)}
    _set_single(draft, tt, meta, segment)
    plan.steps.append(ToolStep("edit_multitrack", op, {"ok": True}, seconds, copy.deepcopy(draft)))


def _set_single(
    draft: dict[str, Any], tt: int, meta: dict[str, Any], segment: dict[str, Any]
) -> None:
    tracks = _tracks(draft)
    segment["st"] = 0
    track = next((t for t in tracks if t.get("tt") == tt), None)
    if track is None:
        tracks.append({"tt": tt, "m": meta, "sg": [segment]})
    else:
        track["m"] = meta
        track["sg"] = [segment]
    _retime(draft)


def _retime(draft: dict[str, Any]) -> None:
    ends = [
        int(sg.get("st", 0)) + int(sg.get("d", 0)) for t in _tracks(draft) for sg in t.get("sg", [])
    ]
    draft["d"] = max(ends, default=0)
    draft.setdefault("m", {"width": 1080, "height": 1920, "fps": 30})
