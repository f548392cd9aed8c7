"""What one Latin word means: the rules' own words, their typos, repeated letters,
"re-" prefixes and -ing/-ed forms, remembered once read."""

from __future__ import annotations

import re

from rapidfuzz.distance import OSA

from router.rules import RULES, Lexeme

_REPEATS = re.compile(r"(.)\1{2,}")
_PAST = ("ed", "d")


def _typo(word: str) -> Lexeme | None:
    """The known word a misspelt word stands for, if it is close enough and not a real word."""
    size = len(word)
    allowed = 0
    for min_len, edits in RULES.fuzzy_steps:
        if size >= min_len:
            allowed = edits
    if not allowed:
        return None
    best: tuple[int, str] | None = None
    for target in RULES.fuzzy_targets:
        if target[0] != word[0] or abs(len(target) - size) > allowed:
            continue
        dist = OSA.distance(word, target, score_cutoff=allowed)
        if dist <= allowed and (best is None or dist < best[0]):
            best = (dist, target)
    if best is None:
        return None
    lex = RULES.fuzzy_targets[best[1]]
    if lex.kind == "phrase":
        stem = keyword_form(best[1])  # "uplaoding" is "uploading" is upload
        if stem is not None and stem.intent is not None and best[0] == 1:
            return Lexeme(stem.intent, stem.weak, stem.canonical, 1, "keyword")
    if lex.kind != "keyword" and best[0] != 1:
        # Phrase words and objects: one slip only ("regarding" is no "recording"); a phrase
        # word spelt right is explained only by its phrase.
        return None
    return Lexeme(lex.intent, lex.weak, best[1], best[0], lex.kind, lex.takes)


def keyword_form(word: str) -> Lexeme | None:
    """Forms of a keyword: re-export, reexport, uploading; exported reports a past action."""
    lexicon = RULES.lexicon
    for prefix in ("re-", "re"):
        if word.startswith(prefix):
            lex = lexicon.get(word[len(prefix) :])
            if lex is not None and lex.kind == "keyword":
                return lex
    if word.endswith("ing"):
        stem = word[:-3]
        for candidate in (stem, stem[:-1] if stem[-2:-1] == stem[-1:] else stem, stem + "e"):
            lex = lexicon.get(candidate)
            if lex is not None and lex.kind == "keyword":
                return lex
    for ending in _PAST:
        if word.endswith(ending):
            lex = lexicon.get(word[: -len(ending)])
            if lex is not None and lex.kind == "keyword":
                return Lexeme(None, canonical=lex.canonical, kind="past")
            if lex is not None and lex.kind == "edit":
                return lex  # "with the logo removed": an edit all the same
    return None


def _resolve(word: str) -> Lexeme | None:
    lex = RULES.lexicon.get(word)
    if lex is not None:
        return lex
    squeezed = _REPEATS.sub(r"\1", word)  # expoooort, pleaseee
    if squeezed != word:
        lex = RULES.lexicon.get(squeezed)
        if lex is not None:
            return lex
        word = squeezed
    if word in RULES.protected:
        return None
    lex = keyword_form(word)
    if lex is not None:
        return lex
    if len(word) >= RULES.fuzzy_steps[0][0] and word.isalpha():
        return _typo(word)
    return None


# Words seen before, with what they mean (None: unknown). A plain dict: reads and
# single assignments are atomic, and it is emptied when it grows too large.
_SEEN: dict[str, Lexeme | None] = dict(RULES.lexicon)
_SEEN_MAX = 200_000


def lookup(word: str) -> Lexeme | None:
    """The word's meaning, or None for a word no rule explains."""
    try:
        return _SEEN[word]
    except KeyError:
        pass
    lex = _resolve(word)
    if len(_SEEN) > _SEEN_MAX:
        _SEEN.clear()
        _SEEN.update(RULES.lexicon)
    _SEEN[word] = lex
    return lex
