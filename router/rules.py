"""Load rules.toml once and compile it into lookup tables and regular expressions."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.types import Intent

DIRECT_INTENTS = (Intent.EXPORT, Intent.CREDITS, Intent.STATUS, Intent.UPLOAD)


@dataclass(frozen=True, slots=True)
class Lexeme:
    """What one Latin word means to the router."""

    intent: Intent | None  # None: filler
    weak: bool = False
    canonical: str = ""
    edits: int = 0


FILLER = Lexeme(None)


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the classifier needs, compiled from the data file."""

    thresholds: dict[str, Any]
    fuzzy_steps: tuple[tuple[int, int], ...]
    lexicon: dict[str, Lexeme]
    fuzzy_targets: dict[str, Intent]
    protected: frozenset[str]
    slash: dict[str, Intent]
    phrases: re.Pattern[str] | None
    phrase_intents: dict[str, Intent]
    phrase_words: frozenset[str]
    zh_keywords: re.Pattern[str]
    zh_intents: dict[str, tuple[Intent, bool]]
    zh_fillers: re.Pattern[str]
    zh_neutral: re.Pattern[str]
    lang_neutral: frozenset[str]
    cues_en: tuple[tuple[str, re.Pattern[str]], ...]
    cues_zh: tuple[tuple[str, re.Pattern[str]], ...]
    gui_export: tuple[re.Pattern[str], ...]
    gui_status: tuple[re.Pattern[str], ...]


def _words_regex(alternatives: list[str]) -> re.Pattern[str]:
    """Match any alternative as whole words of a space-joined word list."""
    body = "|".join(f"(?:{a})" for a in sorted(alternatives, key=len, reverse=True))
    return re.compile(rf"(?<![\w'])(?:{body})(?![\w'])")


def _substring_regex(alternatives: list[str], *, literal: bool = False) -> re.Pattern[str]:
    items = sorted(alternatives, key=len, reverse=True)
    body = "|".join(re.escape(a) if literal else f"(?:{a})" for a in items)
    return re.compile(body or r"(?!x)x")


def build(data: dict[str, Any]) -> Rules:
    """Compile parsed rules; raises ValueError on a malformed table."""
    lexicon: dict[str, Lexeme] = {w: FILLER for w in data["filler"]["en"]}
    slash: dict[str, Intent] = {}
    phrase_groups: list[str] = []
    phrase_intents: dict[str, Intent] = {}
    zh_intents: dict[str, tuple[Intent, bool]] = {}
    for intent in DIRECT_INTENTS:
        spec = data["intents"][intent.value]
        for word in spec["words"]:
            lexicon[word] = Lexeme(intent, canonical=word)
        for word in spec["weak"]:
            lexicon[word] = Lexeme(intent, weak=True, canonical=word)
        for cmd in spec["slash"]:
            slash[cmd] = intent
        for i, phrase in enumerate(spec["phrases"]):
            name = f"{intent.value}_{i}"
            phrase_groups.append(f"(?P<{name}>{phrase})")
            phrase_intents[name] = intent
        for word in spec["zh"]:
            zh_intents[word] = (intent, False)
        for word in spec["zh_weak"]:
            zh_intents[word] = (intent, True)
    phrases = (
        re.compile(rf"(?<![\w'])(?:{'|'.join(phrase_groups)})(?![\w'])") if phrase_groups else None
    )
    literal = re.compile(r"[a-z0-9][a-z0-9']*")
    phrase_words = frozenset(
        w for g in phrase_groups for w in literal.findall(g.split(">", 1)[1]) if w not in lexicon
    )
    fuzzy_targets: dict[str, Intent] = {}
    for word in data["fuzzy"]["targets"]:
        target = lexicon.get(word)
        if target is None or target.intent is None:
            raise ValueError(f"fuzzy target {word!r} is not a keyword")
        fuzzy_targets[word] = target.intent
    cues: dict[str, dict[str, list[str]]] = data["cues"]
    cues_en = tuple((kind, _words_regex(c["en"])) for kind, c in cues.items())
    cues_zh = tuple((kind, _substring_regex(c["zh"])) for kind, c in cues.items())
    gui = data["gui"]
    steps = tuple(sorted((int(a), int(b)) for a, b in data["thresholds"]["fuzzy_distance"]))
    return Rules(
        thresholds=dict(data["thresholds"]),
        fuzzy_steps=steps,
        lexicon=lexicon,
        fuzzy_targets=fuzzy_targets,
        protected=frozenset(data["fuzzy"]["protected"]),
        slash=slash,
        phrases=phrases,
        phrase_intents=phrase_intents,
        phrase_words=phrase_words,
        zh_keywords=_substring_regex(list(zh_intents), literal=True),
        zh_intents=zh_intents,
        zh_fillers=_substring_regex(
            data["filler"]["zh"] + data["filler"]["zh_neutral"], literal=True
        ),
        zh_neutral=_substring_regex(data["filler"]["zh_neutral"], literal=True),
        lang_neutral=frozenset(data["filler"]["lang_neutral"]),
        cues_en=cues_en,
        cues_zh=cues_zh,
        gui_export=(
            _words_regex(gui["export_en"]),
            _substring_regex(gui["export_zh"], literal=False),
        ),
        gui_status=(
            _words_regex(gui["status_en"]),
            _substring_regex(gui["status_zh"], literal=False),
        ),
    )


def load() -> Rules:
    """Read the packaged rules.toml."""
    raw = Path(__file__).with_name("rules.toml").read_text(encoding="utf-8")
    return build(tomllib.loads(raw))


RULES = load()
