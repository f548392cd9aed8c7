"""Text -> Decision. A message is cut into clauses and routed by the clause that names an
action: phrases first, then single words. Words around the action are free unless they
change the request (a negation that governs it, a veto, an edit that must come first, a
context cue); everything doubtful goes to the agent."""

from __future__ import annotations

import dataclasses
import re

from router.clause import Clause, cue_of, may_name_action, read_clause, unknown_han
from router.lexicon import lookup
from router.options import read_options
from router.owner import foreign
from router.rules import RULES
from router.text import (
    HAN,
    URL,
    WORD,
    detect_lang,
    extract_urls,
    lang_of,
    normalize,
    split_quotes,
)
from router.types import Decision, Intent, Lang

_T = RULES.thresholds
_MAX_UNKNOWN = int(_T["max_unknown_words"])
_MAX_UNKNOWN_HAN = int(_T["max_unknown_han"])
_MAX_WORDS = int(_T["max_words"])
_MAX_HAN = int(_T["max_han"])
_MAX_CHARS = int(_T["max_chars"])
_UNKNOWN_STEP = float(_T["score_unknown_step"])
# "@NemoBot export" in a group: the mention addresses the bot, it is not part of the request.
_MENTION = re.compile(r"(?<![\w.])@[A-Za-z]\w{2,}")
_SLASH = re.compile(r"\s*/([A-Za-z_]+)(?:@\w+)?(?=\s|$)")
# Sentences and clauses: punctuation, and the conjunctions that join two requests.
_CLAUSES = re.compile(r"([.!?;,\n…。！？；，、~]+|\s(?:and|but|plus|&)\s)")
# "a /export in the middle": the command is named, not given.
_COMMAND_INSIDE = re.compile(r"(?<=\s)/([A-Za-z_]+)\b")


def _chat(score_key: str, reason: str, lang: Lang, urls: tuple[str, ...]) -> Decision:
    return Decision(Intent.CHAT, float(_T[score_key]), reason, lang, urls)


def _slash(text: str, m: re.Match[str], urls: tuple[str, ...]) -> Decision:
    command = m.group(1).lower()
    rest = normalize(text[m.end() :])
    lang = lang_of(WORD.findall(rest), HAN.search(rest) is not None)
    intent = RULES.slash.get(command)
    if intent is None:
        return _chat("score_no_keyword", f"command /{command} is not a direct action", lang, urls)
    if rest.strip():
        # "/export later": the words after a command can still take it back.
        said = read_clause(rest)
        said.cue = cue_of(said)
        if said.cue is not None and said.cue[0] != "other_sense":
            kind, cue = said.cue
            return _chat("score_cue", f"{kind} cue '{cue}' after /{command}", lang, urls)
        negation = said.negated or next(
            (
                w
                for w in WORD.findall(rest)
                if (x := lookup(w)) is not None and x.kind == "negation"
            ),
            "",
        )
        if negation or said.veto:
            cue = negation or said.veto
            return _chat("score_cue", f"negation cue '{cue}' after /{command}", lang, urls)
    decision = Decision(intent, float(_T["score_slash"]), f"command /{command}", lang, urls)
    if intent is Intent.EXPORT:
        return dataclasses.replace(decision, options=read_options(rest))
    return decision


def classify(text: str) -> Decision:
    """Route one user message: a direct intent, or CHAT for the agent."""
    if not text or text.isspace():
        return Decision(Intent.CHAT, float(_T["score_no_keyword"]), "empty message", "en", ())
    urls = extract_urls(text)
    slash = _SLASH.match(text)
    if slash is not None:
        return _slash(text, slash, urls)
    if len(text) > _MAX_CHARS:
        head = normalize(text[:_MAX_CHARS])
        lang = lang_of(WORD.findall(head), HAN.search(head) is not None)
        return _chat("score_incidental", f"long message ({len(text)} characters)", lang, urls)

    body = URL.sub(" ", text) if urls else text
    inside = _COMMAND_INSIDE.search(body)
    if inside is not None and RULES.slash.get(inside.group(1).lower()) is not None:
        lang = detect_lang(body)
        return _chat("score_cue", f"command {inside.group(0)} named inside a message", lang, urls)
    if "@" in body:
        body = _MENTION.sub(" ", body)
    norm, quoted = split_quotes(normalize(body))
    has_han = HAN.search(norm) is not None
    words = WORD.findall(norm)
    lang = lang_of(words, has_han)
    if quoted:
        for span in quoted:
            if read_clause(span).hits:
                return _chat("score_cue", f"quoted text '{span.strip()[:40]}'", lang, urls)
    if len(words) > _MAX_WORDS or (has_han and len(HAN.findall(norm)) > _MAX_HAN):
        return _chat("score_incidental", "long instruction", lang, urls)

    if not may_name_action(words, norm, has_han):
        return _chat("score_no_keyword", "no keyword", lang, urls)
    pieces = _CLAUSES.split(norm)
    parts: list[str] = []
    joined: list[bool] = []  # the clause follows a conjunction ("and", "plus")
    for i in range(0, len(pieces), 2):
        if pieces[i] and not pieces[i].isspace():
            parts.append(pieces[i])
            joined.append(i > 0 and pieces[i - 1].strip() in ("and", "plus", "&"))
    clauses = [read_clause(p) for p in parts]
    for before, after, is_joined in zip(clauses, clauses[1:], joined[1:], strict=False):
        if is_joined and before.open_negation and after.hits and not after.negated:
            after.negated = before.open_negation  # "don't go ahead and export"
    named = [(c, p) for c, p in zip(clauses, parts, strict=True) if c.hits]
    if not named:
        return _chat("score_no_keyword", "no keyword", lang, urls)
    hits = [h for c, _ in named for h in c.hits]
    first = hits[0].reason
    for c in clauses:
        c.cue = cue_of(c)
    for c in clauses:
        if c.cue is not None and c.cue[0] == "other_sense":
            return _chat("score_cue", f"other sense cue '{c.cue[1]}' ({first})", lang, urls)
    for c in clauses:
        if c.hits and (c.negated or c.veto):
            cue = c.negated or c.veto
            return _chat("score_cue", f"negation cue '{cue}' ({first})", lang, urls)
    for c in clauses:
        if c.cue is not None:
            kind, matched = c.cue
            if kind == "sequence_order" and not _names_more(clauses):
                continue
            return _chat(
                "score_cue", f"{kind.replace('_', ' ')} cue '{matched}' ({first})", lang, urls
            )

    strong = {h.intent for h in hits if not h.weak}
    intents = strong or {h.intent for h in hits}
    if len(intents) > 1:
        names = ", ".join(sorted(i.value for i in intents))
        return _chat("score_cue", f"several actions named: {names}", lang, urls)
    intent = intents.pop()
    index = next(i for i, c in enumerate(clauses) if any(h.intent is intent for h in c.hits))
    request, part = clauses[index], parts[index]
    for later, is_joined in zip(clauses[index + 1 :], joined[index + 1 :], strict=True):
        if intent is Intent.EXPORT and is_joined and not later.hits and later.unknown:
            # "download and save song of dangal movie": the object comes after "and"
            return _chat("score_incidental", f"{first} joined to more words", lang, urls)

    for c in clauses:
        if c.past:
            return _chat("score_cue", f"remark cue '{c.past}' ({first})", lang, urls)
        if c.requirement:
            return _chat("score_cue", f"condition '{c.requirement}' ({first})", lang, urls)
        edit = c.edit
        if edit and not (intent is Intent.UPLOAD and edit in RULES.upload_verbs):
            return _chat("score_cue", f"edit '{edit}' comes first ({first})", lang, urls)

    elsewhere = foreign(request, intent, part)
    if elsewhere:
        return _chat("score_cue", f"other sense: {elsewhere} ({first})", lang, urls)

    extra = list(request.unknown)
    if urls and intent is not Intent.UPLOAD:
        # a link names a file elsewhere: only an upload takes one
        return _chat("score_incidental", f"{first} with a link", lang, urls)
    if quoted:
        extra.append("<quote>")
    left_han = unknown_han(request, intent, part)
    if len(extra) > _MAX_UNKNOWN or left_han > _MAX_UNKNOWN_HAN:
        others = ", ".join(extra[:3]) or f"{left_han} other characters"
        return _chat("score_incidental", f"{first} with other words: {others}", lang, urls)

    best = max((h for h in request.hits if h.intent is intent), key=lambda h: h.score)
    score = best.score - _UNKNOWN_STEP * (len(extra) + left_han)
    decision = Decision(intent, score, best.reason, lang, urls)
    if intent is Intent.EXPORT:
        return dataclasses.replace(decision, options=read_options(norm))
    return decision


def _names_more(clauses: list[Clause]) -> bool:
    """An order cue ("then", "before", "first") counts when the message names anything
    besides the action, not in "Before we go on, show me the timeline"."""
    return any(c.edit or c.unknown or (c.others and not c.hits) for c in clauses)
