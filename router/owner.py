"""Whose thing the action is about: words that make a request someone else's ("the
status of my order", "download from instagram", "delivery status")."""

from __future__ import annotations

import re

from router.clause import Clause, Token
from router.rules import RULES
from router.text import HAN
from router.types import Intent

_COMPOUND = (Intent.STATUS, Intent.CREDITS)


def foreign(clause: Clause, intent: Intent, text: str) -> str:
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


def _after_preposition(tokens: list[Token], position: int) -> bool:
    p = position - 1
    while p >= 0 and (tokens[p][0] in RULES.determiners or tokens[p][1] is None):
        p -= 1
    return p >= 0 and tokens[p][0] in RULES.prepositions


def _known(token: Token) -> bool:
    lex = token[1]
    return (lex is not None and lex.kind != "phrase") or token[0].startswith("<")


def _span(tokens: list[Token], start: int) -> list[Token]:
    """The words after a preposition, up to the next preposition or action."""
    end = start
    while end < len(tokens) and tokens[end][0] not in RULES.prepositions:
        if tokens[end][0].startswith("<"):
            break
        end += 1
    return tokens[start:end]
