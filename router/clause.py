"""One clause of a message, read: the actions it names (phrases first, then words), and
the words around them that could change the request."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from router.lexicon import lookup
from router.rules import RULES, Lexeme
from router.text import HAN, WORD
from router.types import Intent

_T = RULES.thresholds
# A word with what it means; "<name>" with None stands for a matched phrase.
Token = tuple[str, Lexeme | None]


@dataclass(slots=True)
class Hit:
    """One action named in a clause, with the words that named it."""

    intent: Intent
    reason: str
    score: float
    weak: bool = False


@dataclass(slots=True)
class Clause:
    """What one clause says: the actions it names and the words that could change them."""

    hits: list[Hit] = field(default_factory=list)
    rest: str = ""  # the Latin words left once phrases are taken out
    text: str = ""
    tokens: list[Token] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)  # token positions that name an action
    unknown: list[str] = field(default_factory=list)
    others: list[Lexeme] = field(default_factory=list)  # objects, to judge per intent
    negated: str = ""  # the negation that governs the action
    veto: str = ""
    edit: str = ""  # an edit verb nobody negated
    requirement: str = ""  # a negated edit of something named: "不加水印"
    open_negation: str = ""  # a negation still waiting for its verb: "don't go ahead and ..."
    past: str = ""
    unknown_han: int = 0
    cue: tuple[str, str] | None = None


def _word_hit(word: str, lex: Lexeme) -> Hit:
    assert lex.intent is not None
    if lex.edits:
        score = float(_T["score_typo"]) - 0.05 * lex.edits
        return Hit(lex.intent, f"typo '{word}' for '{lex.canonical}'", score, lex.weak)
    return Hit(lex.intent, f"keyword '{word}'", float(_T["score_keyword"]), lex.weak)


def _cue(text: str, zh_text: str) -> tuple[str, str] | None:
    """The first context cue present (negation excepted: it is judged by scope)."""
    for (kind, en), (_, zh) in zip(RULES.cues_en, RULES.cues_zh, strict=True):
        if kind == "negation":
            continue
        m = en.search(text) if text else None
        if m is None and zh_text:
            m = zh.search(zh_text)
        if m is not None:
            return kind, m.group(0)
    return None


def _phrases(words: list[str], joined: str) -> list[re.Match[str]]:
    """Phrase matches, left to right, the longest at each start; looked up by first word."""
    index = RULES.phrases
    found: list[re.Match[str]] = []
    pos = 0
    end = 0
    for word in words:
        start = pos
        pos += len(word) + 1
        if start < end:
            continue
        candidates = index.get(word)
        if candidates is None:
            continue
        best: re.Match[str] | None = None
        for _, pattern in candidates:
            m = pattern.match(joined, start)
            if m is not None and (best is None or m.end() > best.end()):
                best = m
        if best is not None:
            found.append(best)
            end = best.end()
    return found


def may_name_action(words: list[str], norm: str, has_han: bool) -> bool:
    """A cheap first look: most messages name no action, and need no closer reading."""
    canon: list[str] = []
    for word in words:
        lex = lookup(word)
        if lex is not None:
            if lex.kind == "keyword":
                return True
            canon.append(lex.canonical or word)
        else:
            canon.append(word)
    if has_han and (RULES.zh_keywords.search(norm) or RULES.zh_phrases.search(norm)):
        return True
    return any(w in RULES.phrases for w in canon) and bool(_phrases(canon, " ".join(canon)))


def _latin(clause: Clause, words: list[str]) -> str:
    """Read the clause's Latin words; returns what is left once phrases are taken out."""
    canon: list[str] = []
    lexes: list[Lexeme | None] = []
    for word in words:
        lex = lookup(word)
        lexes.append(lex)
        canon.append(lex.canonical if lex is not None and lex.canonical else word)
    joined = " ".join(canon)
    matches = _phrases(canon, joined)
    tokens: list[Token]
    if matches:
        tokens = []
        last = 0
        for m in matches:
            tokens.extend((w, lookup(w)) for w in joined[last : m.start()].split())
            name = m.lastgroup
            assert name is not None
            tokens.append((f"<{name}>", None))
            for inside in m.group(0).split():
                if (x := lookup(inside)) is not None and x.kind == "negation":
                    clause.negated = clause.negated or inside  # "i have no photos"
            clause.hits.append(
                Hit(RULES.phrase_intents[name], f"phrase '{m.group(0)}'", float(_T["score_phrase"]))
            )
            last = m.end()
        tokens.extend((w, lookup(w)) for w in joined[last:].split())
        rest = " ".join(w for w, _ in tokens if not w.startswith("<"))
    else:
        tokens = list(zip(words, lexes, strict=True))
        rest = joined
    clause.tokens = tokens
    negated_edit = ""
    negation = ""
    prev = ""
    for position, (word, lex) in enumerate(tokens):
        pair = f"{prev} {word}"
        before = prev
        prev = word
        if word.startswith("<"):
            clause.actions.append(position)
            if negation:
                clause.negated = clause.negated or negation
            continue
        if pair in RULES.negation_pairs:
            negation = pair
            continue
        if lex is None or lex.kind == "phrase":
            clause.unknown.append(word)
            negation = ""  # "can't remember if ...": the negation governs another verb
            continue
        kind = lex.kind
        if kind == "keyword":
            if _governed(tokens, position):
                continue  # "credits for an export", "commented on my status": an object
            clause.hits.append(_word_hit(word, lex))
            clause.actions.append(position)
            if negation:
                clause.negated = clause.negated or negation
        elif kind == "negation":
            negation = word
        elif kind == "veto":
            clause.veto = clause.veto or word
        elif kind == "edit":
            if before in RULES.determiners:
                continue  # "the final cut": a noun
            if negation:
                negation = ""
                negated_edit = negated_edit or word
            elif not clause.edit:
                clause.edit = word
        elif kind == "past":
            clause.past = clause.past or word
        elif kind == "object":
            clause.others.append(lex)
    clause.open_negation = negation
    if negated_edit and clause.unknown:
        clause.requirement = f"{negated_edit} (negated)"  # "don't add music", not "change anything"
    return rest


def _governed(tokens: list[Token], position: int) -> bool:
    """A keyword after a preposition that hangs on another word is that word's object:
    "credits for an export", "commented on my status" (not "left on my balance")."""
    p = position - 1
    while p >= 0 and tokens[p][0] in RULES.determiners:
        p -= 1
    if p < 1 or tokens[p][0] not in RULES.object_after:
        return False
    head = tokens[p - 1][1]
    return head is None or head.kind != "filler" or tokens[p - 1][0].startswith("<")


def _zh_edit(clause: Clause, text: str) -> None:
    rest = RULES.zh_fillers.sub(" ", RULES.zh_keywords.sub(" ", text))
    edit = RULES.zh_edit.search(rest)
    if edit is None:
        return
    if RULES.zh_negation.search(text, 0, text.find(edit.group(0))) is None:
        clause.edit = clause.edit or edit.group(0)
    elif HAN.search(rest, edit.end()):
        clause.requirement = clause.requirement or f"{edit.group(0)} (negated)"


def _han(clause: Clause, text: str) -> str:
    """Read the clause's Chinese: phrases, keywords, negation scope; returns the residue."""
    text = RULES.zh_neutral.sub(" ", text)
    text = RULES.zh_question_form.sub(" ", text)
    first = len(text)
    for m in RULES.zh_phrases.finditer(text):
        name = m.lastgroup
        if name is not None:
            intent = RULES.zh_phrase_intents[name]
            clause.hits.append(Hit(intent, f"phrase '{m.group(0)}'", float(_T["score_phrase"])))
            first = min(first, m.start())
    if clause.hits and first < len(text):
        text = text[:first] + " " + RULES.zh_phrases.sub(" ", text[first:])
    for m in RULES.zh_keywords.finditer(text):
        intent, weak = RULES.zh_intents[m.group(0)]
        clause.hits.append(Hit(intent, f"keyword '{m.group(0)}'", float(_T["score_keyword"]), weak))
        first = min(first, m.start())
    _zh_edit(clause, text)
    if not clause.hits:
        if not clause.edit and not clause.requirement:
            found = RULES.zh_negation.search(text)
            clause.open_negation = clause.open_negation or (found.group(0) if found else "")
        return text
    negation = RULES.zh_negation.search(text, 0, first) if first else None
    if negation is None:
        # "积分不够": a negation after the keyword states something about it
        negation = RULES.zh_negation.search(RULES.zh_keywords.sub(" ", text), first)
    if negation is not None:
        clause.negated = clause.negated or negation.group(0)
    residue = RULES.zh_keywords.sub(" ", text)
    veto = RULES.zh_veto.search(residue)
    if veto is not None:
        clause.veto = clause.veto or veto.group(0)
    return residue


def read_clause(text: str) -> Clause:
    clause = Clause(text=text)
    words = WORD.findall(text)
    clause.rest = _latin(clause, words) if words else ""
    has_han = HAN.search(text) is not None
    latin_hits = len(clause.hits)
    residue = _han(clause, text) if has_han else ""
    if len(clause.hits) > latin_hits and clause.open_negation and not clause.negated:
        clause.negated = clause.open_negation  # "don't 导出"
    if has_han and clause.hits:
        clause.unknown_han = len(HAN.findall(RULES.zh_fillers.sub("", residue)))
    return clause


def cue_of(clause: Clause) -> tuple[str, str] | None:
    """Cues are read only once some clause names an action: most messages never need them."""
    has_han = HAN.search(clause.text) is not None
    return _cue(clause.rest, RULES.zh_neutral.sub(" ", clause.text) if has_han else "")


def unknown_han(clause: Clause, intent: Intent, text: str) -> int:
    """Han characters left once the intent's own Chinese objects are taken out too."""
    if not clause.unknown_han:
        return 0
    residue = RULES.zh_keywords.sub(" ", RULES.zh_phrases.sub(" ", text))
    residue = RULES.zh_objects[intent].sub("", residue)
    residue = RULES.zh_fillers.sub("", RULES.zh_neutral.sub(" ", residue))
    return len(HAN.findall(RULES.zh_question_form.sub(" ", residue)))
