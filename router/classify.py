"""Text -> Decision. Precision first: a keyword acts only when nothing around it
suggests the user meant something else; everything doubtful goes to the agent."""

from __future__ import annotations

import re

from rapidfuzz.distance import OSA

from router.rules import RULES, Lexeme
from router.text import HAN, URL, WORD, extract_urls, lang_of, normalize, split_quotes
from router.types import Decision, Intent, Lang

_T = RULES.thresholds
# "@NemoBot export" in a group: the mention addresses the bot, it is not part of the request.
_MENTION = re.compile(r"(?<![\w.])@[A-Za-z]\w{2,}")
_SLASH = re.compile(r"\s*/([A-Za-z_]+)(?:@\w+)?(?=\s|$)")


def _typo(word: str) -> Lexeme | None:
    """The keyword a misspelt word stands for, if it is close enough and not a real word."""
    if word in RULES.protected:
        return None
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
    return Lexeme(RULES.fuzzy_targets[best[1]], canonical=best[1], edits=best[0])


# Words seen before, with what they mean (None: unknown). A plain dict: reads and
# single assignments are atomic, and it is emptied when it grows too large.
_SEEN: dict[str, Lexeme | None] = dict(RULES.lexicon)
_SEEN_MAX = 200_000


def _lookup(word: str) -> Lexeme | None:
    try:
        return _SEEN[word]
    except KeyError:
        pass
    lex = _typo(word) if len(word) >= RULES.fuzzy_steps[0][0] else None
    if len(_SEEN) > _SEEN_MAX:
        _SEEN.clear()
        _SEEN.update(RULES.lexicon)
    _SEEN[word] = lex
    return lex


class _Hit:
    __slots__ = ("intent", "reason", "score", "weak")

    def __init__(self, intent: Intent, reason: str, score: float, weak: bool = False) -> None:
        self.intent = intent
        self.reason = reason
        self.score = score
        self.weak = weak


def _word_hit(word: str, lex: Lexeme) -> _Hit:
    assert lex.intent is not None
    if lex.edits:
        score = float(_T["score_typo"]) - 0.05 * lex.edits
        return _Hit(lex.intent, f"typo '{word}' for '{lex.canonical}'", score, lex.weak)
    return _Hit(lex.intent, f"keyword '{word}'", float(_T["score_keyword"]), lex.weak)


def _chat(score_key: str, reason: str, lang: Lang, urls: tuple[str, ...]) -> Decision:
    return Decision(Intent.CHAT, float(_T[score_key]), reason, lang, urls)


def _keywords(words: list[str], norm: str, has_han: bool) -> tuple[list[_Hit], list[str], int]:
    """Keyword hits, the words no rule explains, and the Han characters left over."""
    hits: list[_Hit] = []
    unknown: list[str] = []
    maybe_phrase = False
    phrase_score = float(_T["score_phrase"])
    for word in words:
        lex = _lookup(word)
        if lex is None:
            if word in RULES.phrase_words:
                maybe_phrase = True
            else:
                unknown.append(word)
        elif lex.intent is not None:
            hits.append(_word_hit(word, lex))
    if not unknown and words and RULES.phrases is not None:
        # Phrases can only decide a message made of known words, so only then are they tried.
        joined = " ".join(words)
        phrase_hits = [
            _Hit(RULES.phrase_intents[m.lastgroup], f"phrase '{m.group(0)}'", phrase_score)
            for m in RULES.phrases.finditer(joined)
            if m.lastgroup is not None
        ]
        rest = words
        if phrase_hits:
            # Words inside a phrase belong to it ("export progress" asks for status).
            rest = RULES.phrases.sub(" ", joined).split()
            hits = phrase_hits
            for word in rest:
                lex = _lookup(word)
                if lex is not None and lex.intent is not None:
                    hits.append(_word_hit(word, lex))
        unknown = [w for w in rest if _lookup(w) is None]
    elif maybe_phrase:
        unknown.extend(w for w in words if w in RULES.phrase_words)
    left_han = 0
    if has_han:
        for m in RULES.zh_keywords.finditer(norm):
            intent, weak = RULES.zh_intents[m.group(0)]
            hits.append(_Hit(intent, f"keyword '{m.group(0)}'", float(_T["score_keyword"]), weak))
        if hits:
            residue = RULES.zh_fillers.sub("", RULES.zh_keywords.sub(" ", norm))
            left_han = len(HAN.findall(residue))
    return hits, unknown, left_han


def _quoted_keyword(quoted: tuple[str, ...]) -> str | None:
    for span in quoted:
        hits, _, _ = _keywords(WORD.findall(span), span, HAN.search(span) is not None)
        if hits:
            return span
    return None


def _cue(words: list[str], norm: str, has_han: bool) -> tuple[str, str] | None:
    """The first context cue present, as (kind, matched text)."""
    joined = " ".join(words)
    zh_text = RULES.zh_neutral.sub(" ", norm) if has_han else ""
    for (kind, en), (_, zh) in zip(RULES.cues_en, RULES.cues_zh, strict=True):
        m = en.search(joined) if joined else None
        if m is None and has_han:
            m = zh.search(zh_text)
        if m is not None:
            return kind, m.group(0)
    return None


def classify(text: str) -> Decision:
    """Route one user message: a direct intent, or CHAT for the agent."""
    if not text or text.isspace():
        return Decision(Intent.CHAT, float(_T["score_no_keyword"]), "empty message", "en", ())
    urls = extract_urls(text)
    slash = _SLASH.match(text)
    if slash is not None:
        command = slash.group(1).lower()
        rest = text[slash.end() :]
        lang = lang_of(WORD.findall(normalize(rest)), HAN.search(rest) is not None)
        intent = RULES.slash.get(command)
        if intent is None:
            return _chat(
                "score_no_keyword", f"command /{command} is not a direct action", lang, urls
            )
        return Decision(intent, float(_T["score_slash"]), f"command /{command}", lang, urls)
    if len(text) > int(_T["max_chars"]):
        head = normalize(text[: int(_T["max_chars"])])
        lang = lang_of(WORD.findall(head), HAN.search(head) is not None)
        return _chat("score_incidental", f"long message ({len(text)} characters)", lang, urls)

    body = URL.sub(" ", text) if urls else text
    if "@" in body:
        body = _MENTION.sub(" ", body)
    norm, quoted = split_quotes(normalize(body))
    has_han = HAN.search(norm) is not None
    words = WORD.findall(norm)
    lang = lang_of(words, has_han)
    hits, unknown, left_han = _keywords(words, norm, has_han)
    if quoted:
        span = _quoted_keyword(quoted)
        if span is not None:
            return _chat("score_cue", f"quoted text '{span.strip()[:40]}'", lang, urls)
    if not hits:
        return _chat("score_no_keyword", "no keyword", lang, urls)

    named = hits[0].reason
    cue = _cue(words, norm, has_han)
    if cue is not None:
        kind, matched = cue
        label = kind.replace("_", " ")
        return _chat("score_cue", f"{label} cue '{matched}' ({named})", lang, urls)

    strong = {h.intent for h in hits if not h.weak}
    intents = strong or {h.intent for h in hits}
    if len(intents) > 1:
        names = ", ".join(sorted(i.value for i in intents))
        return _chat("score_cue", f"several actions named: {names}", lang, urls)
    intent = intents.pop()

    if len(words) > int(_T["max_words"]) or len(HAN.findall(norm)) > int(_T["max_han"]):
        return _chat("score_incidental", f"long instruction ({named})", lang, urls)
    extra = list(unknown)
    if urls and intent is not Intent.UPLOAD:
        extra.append("<link>")
    if quoted:
        extra.append("<quote>")
    if len(extra) > int(_T["max_unknown_words"]) or left_han > int(_T["max_unknown_han"]):
        others = ", ".join(extra[:3]) or f"{left_han} other characters"
        return _chat("score_incidental", f"{named} with other words: {others}", lang, urls)

    best = max((h for h in hits if h.intent is intent), key=lambda h: h.score)
    return Decision(intent, best.score, best.reason, lang, urls)
