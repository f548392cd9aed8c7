"""The vocabulary is data: rules.toml alone decides what the router knows."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from router import Intent
from router.rules import RULES, build


def data() -> dict[str, Any]:
    raw = (Path(__file__).resolve().parents[1] / "router" / "rules.toml").read_text("utf-8")
    return tomllib.loads(raw)


def test_every_intent_has_words_in_both_languages() -> None:
    intents = data()["intents"]
    for intent in (Intent.EXPORT, Intent.CREDITS, Intent.STATUS, Intent.UPLOAD):
        spec = intents[intent.value]
        assert spec["words"] and spec["zh"] and spec["slash"]


def test_every_cue_table_is_used_in_file_order() -> None:
    kinds = list(data()["cues"])
    assert kinds[:5] == ["other_sense", "negation", "postponement", "sequence", "question"]
    assert "sequence_order" in kinds
    assert [k for k, _ in RULES.cues_en] == kinds
    assert [k for k, _ in RULES.cues_zh] == kinds


def test_a_new_keyword_needs_only_data() -> None:
    changed = data()
    changed["intents"]["credits"]["words"].append("tokens")
    changed["intents"]["credits"]["zh"].append("代币")
    rules = build(changed)
    lex = rules.lexicon["tokens"]
    assert lex.intent is Intent.CREDITS
    assert rules.zh_keywords.search("代币") is not None


def test_a_fuzzy_target_must_be_a_keyword() -> None:
    changed = data()
    changed["fuzzy"]["targets"].append("banana")
    with pytest.raises(ValueError, match="banana"):
        build(changed)


def test_protected_words_are_never_keywords() -> None:
    from router import classify

    assert not [w for w in RULES.protected if (lex := RULES.lexicon.get(w)) and lex.intent]
    assert not [w for w in RULES.protected if classify(w).direct]


def test_fillers_never_name_an_intent_by_themselves() -> None:
    from router import classify

    fillers = [w for w, lex in RULES.lexicon.items() if lex.intent is None]
    assert len(fillers) > 100
    assert not [w for w in fillers if classify(w).direct]
