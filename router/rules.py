"""Load rules.toml once and compile it into lookup tables and regular expressions."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from router.types import Intent

DIRECT_INTENTS = (Intent.EXPORT, Intent.CREDITS, Intent.STATUS, Intent.UPLOAD)


Kind = Literal["keyword", "filler", "object", "edit", "veto", "negation", "past", "cue", "phrase"]
OPTION_FIELDS = ("resolution", "aspect", "quality", "format")


@dataclass(frozen=True, slots=True)
class Lexeme:
    """What one Latin word means to the router."""

    intent: Intent | None  # the intent a keyword names; None for every other kind
    weak: bool = False
    canonical: str = ""
    edits: int = 0
    kind: Kind = "filler"
    takes: frozenset[Intent] = frozenset()  # objects: the intents that take this word


FILLER = Lexeme(None)


@dataclass(frozen=True, slots=True)
class OptionTable:
    """One export option: its terms (Latin words and Chinese substrings) and their values."""

    field: str
    en: re.Pattern[str]
    zh: re.Pattern[str]
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the classifier needs, compiled from the data file."""

    thresholds: dict[str, Any]
    fuzzy_steps: tuple[tuple[int, int], ...]
    lexicon: dict[str, Lexeme]
    fuzzy_targets: dict[str, Lexeme]
    protected: frozenset[str]
    slash: dict[str, Intent]
    phrases: dict[str, tuple[tuple[str, re.Pattern[str]], ...]]  # by first word
    phrase_intents: dict[str, Intent]
    phrase_words: frozenset[str]
    zh_keywords: re.Pattern[str]
    zh_intents: dict[str, tuple[Intent, bool]]
    zh_fillers: re.Pattern[str]
    zh_neutral: re.Pattern[str]
    zh_question_form: re.Pattern[str]
    zh_objects: dict[Intent, re.Pattern[str]]
    zh_phrases: re.Pattern[str]
    zh_phrase_intents: dict[str, Intent]
    zh_edit: re.Pattern[str]
    zh_veto: re.Pattern[str]
    zh_negation: re.Pattern[str]
    negation_pairs: frozenset[str]
    upload_verbs: frozenset[str]
    determiners: frozenset[str]
    ours: dict[Intent, frozenset[str]]
    prepositions: frozenset[str]
    object_after: frozenset[str]
    vetoes: dict[Intent, frozenset[str]]
    zh_vetoes: dict[Intent, re.Pattern[str]]
    zh_foreign: dict[Intent, re.Pattern[str]]
    foreign_after: dict[Intent, frozenset[str]]
    indefinite: dict[Intent, frozenset[str]]
    options: tuple[OptionTable, ...]
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


_LOOKBEHIND = re.compile(r"^(?:\(\?<!(?:[^()\\]|\\.)*\))+")
_FIRST = re.compile(r"[a-z0-9'][a-z0-9'-]*")


def _group_end(text: str) -> int:
    depth = 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced phrase {text!r}")


def _alternatives(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(body):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts


def first_words(phrase: str) -> set[str]:
    """The words a phrase can start with; raises ValueError if its start is optional."""
    text = _LOOKBEHIND.sub("", phrase)
    if text.startswith("(?:") or text.startswith("("):
        end = _group_end(text)
        if text[end + 1 : end + 2] in ("?", "*", "{"):
            raise ValueError(f"phrase {phrase!r} must start with a word that is always there")
        inner = text[3:end] if text.startswith("(?:") else text[1:end]
        words: set[str] = set()
        for alternative in _alternatives(inner):
            words |= first_words(alternative + text[end + 1 :])
        return words
    m = _FIRST.match(text)
    if m is None or text[m.end() : m.end() + 1] not in ("", " ", ")", "|"):
        raise ValueError(f"phrase {phrase!r} must start with a plain word")
    return {m.group(0)}


def _lexicon(data: dict[str, Any]) -> dict[str, Lexeme]:
    """Every known Latin word; a later table overrides an earlier one (keywords last)."""
    filler = data["filler"]
    lexicon: dict[str, Lexeme] = {
        w: FILLER for w in filler["en"] + filler["names"] + filler["shared_objects"]
    }
    takes: dict[str, set[Intent]] = {}
    for intent in DIRECT_INTENTS:
        for word in data["intents"][intent.value]["objects"]:
            takes.setdefault(word, set()).add(intent)
    for word, intents in takes.items():
        lexicon[word] = Lexeme(None, canonical=word, kind="object", takes=frozenset(intents))
    # Single-word cues are known words: the cue, not the word, decides what they do.
    for table in data["cues"].values():
        for word in table["en"]:
            if word.isalpha():
                lexicon.setdefault(word, Lexeme(None, canonical=word, kind="cue"))
    words = data["words"]
    for word in words["edit"]:
        lexicon[word] = Lexeme(None, canonical=word, kind="edit")
    for word in words["veto"]:
        lexicon[word] = Lexeme(None, canonical=word, kind="veto")
    for word in data["cues"]["negation"]["en"]:
        if " " not in word:
            lexicon[word] = Lexeme(None, canonical=word, kind="negation")
    for table in data["options"].values():
        for terms in table.values():
            for term in terms:
                if term.isascii() and " " not in term:
                    lexicon.setdefault(term, FILLER)
    for intent in DIRECT_INTENTS:
        spec = data["intents"][intent.value]
        for word in spec["words"]:
            lexicon[word] = Lexeme(intent, canonical=word, kind="keyword")
        for word in spec["weak"]:
            lexicon[word] = Lexeme(intent, weak=True, canonical=word, kind="keyword")
    return lexicon


def _objects_regex(objects: list[str]) -> str:
    return "(?:" + "|".join(re.escape(o) for o in sorted(objects, key=len, reverse=True)) + ")"


def _options(data: dict[str, Any]) -> tuple[OptionTable, ...]:
    tables = []
    for field in OPTION_FIELDS:
        values = {term: value for value, terms in data[field].items() for term in terms}
        latin = [t for t in values if not HAN_TERM.search(t)]
        han = [t for t in values if HAN_TERM.search(t)]
        tables.append(
            OptionTable(
                field,
                _words_regex([re.escape(t) for t in latin]),
                _substring_regex(han, literal=True),
                values,
            )
        )
    return tuple(tables)


HAN_TERM = re.compile("[\u4e00-\u9fff]")


def build(data: dict[str, Any]) -> Rules:
    """Compile parsed rules; raises ValueError on a malformed table."""
    lexicon = _lexicon(data)
    slash: dict[str, Intent] = {}
    phrase_groups: list[str] = []
    phrase_intents: dict[str, Intent] = {}
    zh_intents: dict[str, tuple[Intent, bool]] = {}
    zh_objects: dict[Intent, re.Pattern[str]] = {}
    zh_phrase_groups: list[str] = []
    zh_phrase_intents: dict[str, Intent] = {}
    for intent in DIRECT_INTENTS:
        spec = data["intents"][intent.value]
        objects = _objects_regex(spec["objects"] + data["filler"]["shared_objects"])
        for cmd in spec["slash"]:
            slash[cmd] = intent
        for i, phrase in enumerate(spec["phrases"]):
            name = f"{intent.value}_{i}"
            phrase_groups.append(f"(?P<{name}>{phrase.replace('{objects}', objects)})")
            phrase_intents[name] = intent
        for i, phrase in enumerate(spec["zh_phrases"]):
            name = f"{intent.value}_{i}"
            zh_phrase_groups.append(f"(?P<{name}>{phrase})")
            zh_phrase_intents[name] = intent
        for word in spec["zh"]:
            zh_intents[word] = (intent, False)
        for word in spec["zh_weak"]:
            zh_intents[word] = (intent, True)
        zh_objects[intent] = _substring_regex(spec["zh_objects"], literal=True)
    index: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for group in phrase_groups:
        name, body = group[4:].split(">", 1)
        compiled = re.compile(f"{group}(?![\\w'])")
        for word in first_words(body[:-1]):
            index.setdefault(word, []).append((name, compiled))
    phrases = {word: tuple(found) for word, found in index.items()}
    literal = re.compile(r"[a-z0-9][a-z0-9']*")
    phrase_words = frozenset(
        w for g in phrase_groups for w in literal.findall(g.split(">", 1)[1]) if w not in lexicon
    )
    protected = frozenset(data["fuzzy"]["protected"])
    fuzzy_targets: dict[str, Lexeme] = {}
    for word in data["fuzzy"]["targets"]:
        target = lexicon.get(word)
        if target is None or target.intent is None:
            raise ValueError(f"fuzzy target {word!r} is not a keyword")
        fuzzy_targets[word] = target
    # Long words of phrases and objects tolerate typos too ("pictrues", "timelnie").
    min_phrase_len = int(data["thresholds"]["fuzzy_phrase_min_length"])
    for word in sorted(phrase_words | {w for w, x in lexicon.items() if x.kind == "object"}):
        if len(word) >= min_phrase_len and word.isalpha() and word not in fuzzy_targets:
            fuzzy_targets[word] = lexicon.get(word, Lexeme(None, canonical=word, kind="phrase"))
    cues: dict[str, dict[str, list[str]]] = data["cues"]
    cues_en = tuple((kind, _words_regex(c["en"])) for kind, c in cues.items())
    cues_zh = tuple((kind, _substring_regex(c["zh"])) for kind, c in cues.items())
    gui = data["gui"]
    words = data["words"]
    steps = tuple(sorted((int(a), int(b)) for a, b in data["thresholds"]["fuzzy_distance"]))
    return Rules(
        thresholds=dict(data["thresholds"]),
        fuzzy_steps=steps,
        lexicon=lexicon,
        fuzzy_targets=fuzzy_targets,
        protected=protected,
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
        zh_question_form=re.compile(data["filler"]["zh_question_form"]),
        zh_objects=zh_objects,
        zh_phrases=_substring_regex(zh_phrase_groups),
        zh_phrase_intents=zh_phrase_intents,
        zh_edit=_substring_regex(words["zh_edit"], literal=True),
        zh_veto=_substring_regex(words["zh_veto"], literal=True),
        zh_negation=_substring_regex(cues["negation"]["zh"], literal=True),
        negation_pairs=frozenset(w for w in cues["negation"]["en"] if " " in w),
        upload_verbs=frozenset(words["upload_verbs"]),
        determiners=frozenset(words["determiners"]),
        ours={
            i: frozenset(
                data["filler"]["ours"]
                + data["filler"]["shared_objects"]
                + data["intents"][i.value]["objects"]
            )
            for i in DIRECT_INTENTS
        },
        object_after=frozenset(words["object_after"]),
        prepositions=frozenset(
            w for i in DIRECT_INTENTS for w in data["intents"][i.value]["foreign_after"]
        ),
        vetoes={i: frozenset(data["intents"][i.value]["veto"]) for i in DIRECT_INTENTS},
        zh_vetoes={
            i: _substring_regex(data["intents"][i.value]["zh_veto"], literal=True)
            for i in DIRECT_INTENTS
        },
        zh_foreign={
            i: _substring_regex(data["intents"][i.value]["zh_foreign"], literal=True)
            for i in DIRECT_INTENTS
        },
        indefinite={
            i: frozenset(data["intents"][i.value].get("indefinite", [])) for i in DIRECT_INTENTS
        },
        foreign_after={
            i: frozenset(data["intents"][i.value]["foreign_after"]) for i in DIRECT_INTENTS
        },
        options=_options(data["options"]),
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
