"""Any string at all, however large or broken, gets a Decision and never an exception."""

from __future__ import annotations

from pathlib import Path

import opencc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import Decision, GuiAction, GuiHint, Intent, classify, detect_lang, read_agent_text
from router.rules import RULES
from router.text import normalize

# Every code point, lone surrogates and control characters included.
any_char = st.integers(min_value=0, max_value=0x10FFFF).map(chr)
any_text = st.lists(any_char, max_size=200).map("".join)
awkward = st.sampled_from(
    [
        "export",
        "导出",
        "積分",
        "/status",
        "\x00",
        "\ud800",
        "\udfff",
        "\u200b",
        "\r\n",
        "\x1b[31m",
        '"',
        "「",
        "'",
        "https://",
        "ｅｘｐｏｒｔ",
        "don't",
        "\U0001f600",
        "\ufeff",
        " ",
    ]
)
mixed_text = st.lists(st.one_of(awkward, any_text), max_size=12).map(" ".join)


def check(decision: Decision) -> None:
    assert isinstance(decision.intent, Intent)
    assert 0.0 <= decision.score <= 1.0
    assert decision.reason
    assert decision.lang in ("en", "zh", "mixed")
    assert all(u.lower().startswith(("http://", "https://")) for u in decision.urls)


@given(any_text)
@settings(max_examples=400)
def test_any_text(text: str) -> None:
    check(classify(text))
    assert detect_lang(text) in ("en", "zh", "mixed")
    assert isinstance(read_agent_text(text), GuiHint)


@given(mixed_text)
@settings(max_examples=400)
def test_keywords_among_junk(text: str) -> None:
    check(classify(text))
    assert read_agent_text(text).action in tuple(GuiAction)


@given(st.text(st.characters(codec="utf-8"), max_size=300))
def test_classify_is_deterministic(text: str) -> None:
    assert classify(text) == classify(text)


def test_empty_and_blank() -> None:
    for text in ("", " ", "\n\t", "\u3000"):
        decision = classify(text)
        assert decision.intent is Intent.CHAT
        check(decision)
    assert read_agent_text("").action is GuiAction.NONE


def test_one_megabyte() -> None:
    for unit in ("export ", "导出", "a", "\x00", "\ud800", "https://x.io/ "):
        text = unit * (1_000_000 // len(unit))
        decision = classify(text)
        assert decision.intent is Intent.CHAT
        check(decision)
        read_agent_text(text)
        detect_lang(text)


def test_control_characters_and_surrogates() -> None:
    text = "".join(chr(c) for c in range(0x20)) + "export" + "\ud800\udc00\udfff"
    check(classify(text))
    assert classify("\x00export\x00").intent is Intent.EXPORT
    assert classify("导出\ud800").intent is Intent.EXPORT


# ------------------------------------------------------------------ outcomes, not only types

_DATA = Path(__file__).resolve().parent / "data" / "intents.tsv"
_DIRECT = [
    (Intent(label), text)
    for label, text in (
        line.split("\t", 1)
        for line in _DATA.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    if label != "chat" and not text.startswith("/") and "://" not in text
]
direct_example = st.sampled_from(_DIRECT)
invisible = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"])


@given(direct_example, invisible, st.integers(min_value=0, max_value=200))
@settings(max_examples=300)
def test_invisible_characters_change_nothing(
    example: tuple[Intent, str], mark: str, at: int
) -> None:
    intent, text = example
    cut = at % (len(text) + 1)
    assert classify(text[:cut] + mark + text[cut:]).intent is intent


@given(direct_example, st.sampled_from(["please", "thanks", "ok", "um", "hey"]))
@settings(max_examples=200)
def test_politeness_around_a_request_keeps_it(example: tuple[Intent, str], word: str) -> None:
    intent, text = example
    assert classify(f"{word}, {text}").intent is intent


@given(st.lists(st.sampled_from(["export", "please", "the", "video", "now", "ok"]), min_size=15))
def test_more_than_fourteen_words_go_to_the_agent(words: list[str]) -> None:
    assert classify(" ".join(words)).intent is Intent.CHAT


@given(mixed_text)
@settings(max_examples=300)
def test_options_only_with_exports_and_links_from_the_text(text: str) -> None:
    decision = classify(text)
    if decision.options:
        assert decision.intent is Intent.EXPORT
    assert all(url in text for url in decision.urls)


_CONTEXTS = ("{}上有什麼", "{}上面", "看{}", "{}中", "{}裡", "線上{}", "在{}上", "{}下來", "{}到")


@pytest.mark.parametrize("config", ["s2t", "s2twp"])
def test_a_keyword_in_traditional_survives_the_words_around_it(config: str) -> None:
    """Taiwan phrases never take half a keyword (時間線上: 線上 alone is "online")."""
    converter = opencc.OpenCC(config)
    for word, (intent, _) in RULES.zh_intents.items():
        for context in _CONTEXTS:
            text = normalize(context.format(converter.convert(word)))
            found = {RULES.zh_intents[k][0] for k in RULES.zh_intents if k in text}
            assert intent in found, (context.format(converter.convert(word)), text)
