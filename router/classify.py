"""Text -> Decision. A message is cut into clauses and routed by the clause that names an
action: phrases first, then single words. Words around the action are free unless they
change the request (a negation that governs it, a veto, an edit that must come first, a
context cue); everything doubtful goes to the agent."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz.distance import OSA

from router.options import read_options
from router.rules import RULES, Lexeme
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
        stem = _keyword_stem(best[1])  # "uplaoding" is "uploading" is upload
        if stem is not None and stem.intent is not None and best[0] == 1:
            return Lexeme(stem.intent, stem.weak, stem.canonical, 1, "keyword")
    if lex.kind != "keyword" and best[0] != 1:
        # Phrase words and objects: one slip only ("regarding" is no "recording"); a phrase
        # word spelt right is explained only by its phrase.
        return None
    return Lexeme(lex.intent, lex.weak, best[1], best[0], lex.kind, lex.takes)


def _keyword_stem(word: str) -> Lexeme | None:
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
    lex = _keyword_stem(word)
    if lex is not None:
        return lex
    if len(word) >= RULES.fuzzy_steps[0][0] and word.isalpha():
        return _typo(word)
    return None


# Words seen before, with what they mean (None: unknown). A plain dict: reads and
# single assignments are atomic, and it is emptied when it grows too large.
_SEEN: dict[str, Lexeme | None] = dict(RULES.lexicon)
_SEEN_MAX = 200_000


def _lookup(word: str) -> Lexeme | None:
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


@dataclass(slots=True)
class _Hit:
    intent: Intent
    reason: str
    score: float
    weak: bool = False


@dataclass(slots=True)
class _Clause:
    """What one clause says: the actions it names and the words that could change them."""

    hits: list[_Hit] = field(default_factory=list)
    rest: str = ""  # the Latin words left once phrases are taken out
    text: str = ""
    tokens: list[tuple[str, Lexeme | None]] = field(default_factory=list)
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


def _word_hit(word: str, lex: Lexeme) -> _Hit:
    assert lex.intent is not None
    if lex.edits:
        score = float(_T["score_typo"]) - 0.05 * lex.edits
        return _Hit(lex.intent, f"typo '{word}' for '{lex.canonical}'", score, lex.weak)
    return _Hit(lex.intent, f"keyword '{word}'", float(_T["score_keyword"]), lex.weak)


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


def _may_name_action(words: list[str], norm: str, has_han: bool) -> bool:
    """A cheap first look: most messages name no action, and need no closer reading."""
    canon: list[str] = []
    for word in words:
        lex = _lookup(word)
        if lex is not None:
            if lex.kind == "keyword":
                return True
            canon.append(lex.canonical or word)
        else:
            canon.append(word)
    if has_han and (RULES.zh_keywords.search(norm) or RULES.zh_phrases.search(norm)):
        return True
    return any(w in RULES.phrases for w in canon) and bool(_phrases(canon, " ".join(canon)))


def _latin(clause: _Clause, words: list[str]) -> str:
    """Read the clause's Latin words; returns what is left once phrases are taken out."""
    canon: list[str] = []
    lexes: list[Lexeme | None] = []
    for word in words:
        lex = _lookup(word)
        lexes.append(lex)
        canon.append(lex.canonical if lex is not None and lex.canonical else word)
    joined = " ".join(canon)
    matches = _phrases(canon, joined)
    tokens: list[tuple[str, Lexeme | None]]
    if matches:
        tokens = []
        last = 0
        for m in matches:
            tokens.extend((w, _lookup(w)) for w in joined[last : m.start()].split())
            name = m.lastgroup
            assert name is not None
            tokens.append((f"<{name}>", None))
            clause.hits.append(
                _Hit(
                    RULES.phrase_intents[name], f"phrase '{m.group(0)}'", float(_T["score_phrase"])
                )
            )
            last = m.end()
        tokens.extend((w, _lookup(w)) for w in joined[last:].split())
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


def _governed(tokens: list[tuple[str, Lexeme | None]], position: int) -> bool:
    """A keyword after a preposition that hangs on another word is that word's object:
    "credits for an export", "commented on my status" (not "left on my balance")."""
    p = position - 1
    while p >= 0 and tokens[p][0] in RULES.determiners:
        p -= 1
    if p < 1 or tokens[p][0] not in RULES.object_after:
        return False
    head = tokens[p - 1][1]
    return head is None or head.kind != "filler" or tokens[p - 1][0].startswith("<")


def _zh_edit(clause: _Clause, text: str) -> None:
    rest = RULES.zh_fillers.sub(" ", RULES.zh_keywords.sub(" ", text))
    edit = RULES.zh_edit.search(rest)
    if edit is None:
        return
    if RULES.zh_negation.search(text, 0, text.find(edit.group(0))) is None:
        clause.edit = clause.edit or edit.group(0)
    elif HAN.search(rest, edit.end()):
        clause.requirement = clause.requirement or f"{edit.group(0)} (negated)"


def _han(clause: _Clause, text: str) -> str:
    """Read the clause's Chinese: phrases, keywords, negation scope; returns the residue."""
    text = RULES.zh_neutral.sub(" ", text)
    text = RULES.zh_question_form.sub(" ", text)
    first = len(text)
    for m in RULES.zh_phrases.finditer(text):
        name = m.lastgroup
        if name is not None:
            intent = RULES.zh_phrase_intents[name]
            clause.hits.append(_Hit(intent, f"phrase '{m.group(0)}'", float(_T["score_phrase"])))
            first = min(first, m.start())
    if clause.hits and first < len(text):
        text = text[:first] + " " + RULES.zh_phrases.sub(" ", text[first:])
    for m in RULES.zh_keywords.finditer(text):
        intent, weak = RULES.zh_intents[m.group(0)]
        clause.hits.append(
            _Hit(intent, f"keyword '{m.group(0)}'", float(_T["score_keyword"]), weak)
        )
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


def _read(text: str) -> _Clause:
    clause = _Clause(text=text)
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


def _cue_of(clause: _Clause) -> tuple[str, str] | None:
    """Cues are read only once some clause names an action: most messages never need them."""
    has_han = HAN.search(clause.text) is not None
    return _cue(clause.rest, RULES.zh_neutral.sub(" ", clause.text) if has_han else "")


def _unknown_han(clause: _Clause, intent: Intent, text: str) -> int:
    """Han characters left once the intent's own Chinese objects are taken out too."""
    if not clause.unknown_han:
        return 0
    residue = RULES.zh_keywords.sub(" ", RULES.zh_phrases.sub(" ", text))
    residue = RULES.zh_objects[intent].sub("", residue)
    residue = RULES.zh_fillers.sub("", RULES.zh_neutral.sub(" ", residue))
    return len(HAN.findall(RULES.zh_question_form.sub(" ", residue)))


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
        said = _read(rest)
        said.cue = _cue_of(said)
        if said.cue is not None and said.cue[0] != "other_sense":
            kind, cue = said.cue
            return _chat("score_cue", f"{kind} cue '{cue}' after /{command}", lang, urls)
        negation = said.negated or next(
            (
                w
                for w in WORD.findall(rest)
                if (x := _lookup(w)) is not None and x.kind == "negation"
            ),
            "",
        )
        if negation or said.veto:
            cue = negation or said.veto
            return _chat("score_cue", f"negation cue '{cue}' after /{command}", lang, urls)
    options = read_options(rest) if intent is Intent.EXPORT else None
    decision = Decision(intent, float(_T["score_slash"]), f"command /{command}", lang, urls)
    if options:
        return Decision(*_fields(decision), options=options)
    return decision


def _fields(d: Decision) -> tuple[Intent, float, str, Lang, tuple[str, ...]]:
    return d.intent, d.score, d.reason, d.lang, d.urls


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
            if _read(span).hits:
                return _chat("score_cue", f"quoted text '{span.strip()[:40]}'", lang, urls)
    if len(words) > _MAX_WORDS or (has_han and len(HAN.findall(norm)) > _MAX_HAN):
        return _chat("score_incidental", "long instruction", lang, urls)

    if not _may_name_action(words, norm, has_han):
        return _chat("score_no_keyword", "no keyword", lang, urls)
    pieces = _CLAUSES.split(norm)
    parts: list[str] = []
    joined: list[bool] = []  # the clause follows a conjunction ("and", "plus")
    for i in range(0, len(pieces), 2):
        if pieces[i] and not pieces[i].isspace():
            parts.append(pieces[i])
            joined.append(i > 0 and pieces[i - 1].strip() in ("and", "plus", "&"))
    clauses = [_read(p) for p in parts]
    for before, after, is_joined in zip(clauses, clauses[1:], joined[1:], strict=False):
        if is_joined and before.open_negation and after.hits and not after.negated:
            after.negated = before.open_negation  # "don't go ahead and export"
    named = [(c, p) for c, p in zip(clauses, parts, strict=True) if c.hits]
    if not named:
        return _chat("score_no_keyword", "no keyword", lang, urls)
    hits = [h for c, _ in named for h in c.hits]
    first = hits[0].reason
    for c in clauses:
        c.cue = _cue_of(c)
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

    foreign = _foreign(request, intent, part)
    if foreign:
        return _chat("score_cue", f"other sense: {foreign} ({first})", lang, urls)

    extra = list(request.unknown)
    if urls and intent is not Intent.UPLOAD:
        # a link names a file elsewhere: only an upload takes one
        return _chat("score_incidental", f"{first} with a link", lang, urls)
    if quoted:
        extra.append("<quote>")
    left_han = _unknown_han(request, intent, part)
    if len(extra) > _MAX_UNKNOWN or left_han > _MAX_UNKNOWN_HAN:
        others = ", ".join(extra[:3]) or f"{left_han} other characters"
        return _chat("score_incidental", f"{first} with other words: {others}", lang, urls)

    best = max((h for h in request.hits if h.intent is intent), key=lambda h: h.score)
    score = best.score - _UNKNOWN_STEP * (len(extra) + left_han)
    options = read_options(norm) if intent is Intent.EXPORT else None
    if options:
        return Decision(intent, score, best.reason, lang, urls, options)
    return Decision(intent, score, best.reason, lang, urls)


def _names_more(clauses: list[_Clause]) -> bool:
    """An order cue ("then", "before", "first") counts when the message names anything
    besides the action, not in "Before we go on, show me the timeline"."""
    return any(c.edit or c.unknown or (c.others and not c.hits) for c in clauses)


_COMPOUND = (Intent.STATUS, Intent.CREDITS)


def _foreign(clause: _Clause, intent: Intent, text: str) -> str:
    """Why the action belongs to something else, or "": a word only this intent cannot take
    ("download some stock footage"), an unexplained thing after a preposition ("status of
    my order", "download from instagram"), an unexplained word naming whose status or
    balance it is ("delivery status"), or a negation after it ("the balance didn't update")."""
    tokens = clause.tokens
    vetoes = RULES.vetoes[intent]
    after = RULES.foreign_after[intent]
    start = clause.actions[0] if clause.actions else len(tokens)
    ours = RULES.ours[intent]
    indefinite = RULES.indefinite[intent]
    for position, (word, lex) in enumerate(tokens):
        if word in vetoes:
            return f"'{word}'"
        if word in indefinite and position > start:
            span = _span(tokens, position + 1)
            if not all(_known(t) for t in span) and not any(t[0] in ours for t in span):
                return f"'{word} {' '.join(t[0] for t in span)}' is something new"
        if (
            lex is not None
            and lex.kind == "object"
            and intent not in lex.takes
            and not _after_preposition(tokens, position)
        ):
            return f"'{word}' is not something to {intent.value}"
        if word in after and (position == 0 or _known(tokens[position - 1])):
            span = _span(tokens, position + 1)
            if not all(_known(t) for t in span) and not any(t[0] in ours for t in span):
                return f"'{word} {' '.join(t[0] for t in span)}'"
        if position > start and lex is not None and lex.kind == "negation":
            return f"negation '{word}' after the action"
    for position in clause.actions:
        # "the movie schedule", "credit rewards": the action's word modifies another noun
        if position + 1 < len(tokens) and not _known(tokens[position + 1]):
            return f"'{tokens[position][0].strip('<>')} {tokens[position + 1][0]}'"
    if HAN.search(text):
        for table in (RULES.zh_vetoes[intent], RULES.zh_foreign[intent]):
            m = table.search(RULES.zh_keywords.sub(" ", text))
            if m is not None:
                return f"'{m.group(0)}'"
    if intent in _COMPOUND:
        for position in clause.actions:
            if position and not _known(tokens[position - 1]):
                return f"'{tokens[position - 1][0]} {tokens[position][0].strip('<>')}'"
        if clause.unknown_han and HAN.search(text):
            marked = RULES.zh_keywords.sub(lambda m: "\x01" * len(m.group(0)), text)
            marked = RULES.zh_fillers.sub(lambda m: " " * len(m.group(0)), marked)
            for m in re.finditer("\x01+", marked):
                if m.start() and HAN.match(marked, m.start() - 1):
                    return f"'{text[max(0, m.start() - 2) : m.end()]}'"
    return ""


def _after_preposition(tokens: list[tuple[str, Lexeme | None]], position: int) -> bool:
    p = position - 1
    while p >= 0 and (tokens[p][0] in RULES.determiners or tokens[p][1] is None):
        p -= 1
    return p >= 0 and tokens[p][0] in RULES.prepositions


def _known(token: tuple[str, Lexeme | None]) -> bool:
    lex = token[1]
    return (lex is not None and lex.kind != "phrase") or token[0].startswith("<")


def _span(tokens: list[tuple[str, Lexeme | None]], start: int) -> list[tuple[str, Lexeme | None]]:
    """The words after a preposition, up to the next preposition or action."""
    end = start
    while end < len(tokens) and tokens[end][0] not in RULES.prepositions:
        if tokens[end][0].startswith("<"):
            break
        end += 1
    return tokens[start:end]
