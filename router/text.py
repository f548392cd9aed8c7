"""Text normalisation shared by the classifier and the GUI reader.

Invisible format characters (zero-width space, joiners, soft hyphen, BOM) are dropped,
NFKC folds full-width letters and digits, casefold removes case, curly apostrophes become
plain, and OpenCC converts Chinese word by word to mainland simplified (tw2sp: 專案 is
项目, 影片 is 视频) so one keyword table serves Taiwan, Hong Kong and the mainland.
"""

from __future__ import annotations

import re
import unicodedata

import opencc

from router.rules import RULES
from router.types import Lang

_T2S = opencc.OpenCC("tw2sp")


def _keywords_in_traditional() -> dict[str, str]:
    """The router's Chinese keywords as Traditional and Taiwan spellings write them, each
    with the keyword it spells (匯入 is 导入)."""
    spellings: dict[str, str] = {}
    for config in ("s2t", "s2twp"):
        converter = opencc.OpenCC(config)
        for word in RULES.zh_intents:
            form = converter.convert(word)
            if form != word:
                spellings.setdefault(form, word)
    return spellings


# Keywords are put back whole before the word conversion, so a Taiwan phrase never takes
# half of one: in 時間線上, 線上 alone would be "online" (在线).
_HANT_KEYWORDS = _keywords_in_traditional()
_HANT_KEYWORD = re.compile("|".join(map(re.escape, sorted(_HANT_KEYWORDS, key=len, reverse=True))))

_HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
HAN = re.compile(f"[{_HAN_CLASS}]")
# Words outside Han: letters and digits, joined by apostrophes, hyphens or colons ("don't", "9:16").
WORD = re.compile(rf"[^\W_{_HAN_CLASS}]+(?:['\-:][^\W_{_HAN_CLASS}]+)*")
# Only printable ASCII after the scheme: Chinese text right after a link ends it.
URL = re.compile(r"(?i)(?<![a-z0-9])https?://[!-~]+")
_MAX_URLS = int(RULES.thresholds["max_urls"])
_URL_TAIL = ".,;:!?)]}>'\"`*_"
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
# Unicode category Cf that shows nothing: a word split by one is still the word.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# Curly and modifier apostrophes inside a word ("don’t"); quotes around text stay quotes.
_APOSTROPHE = re.compile("(?<=[^\\W_])[’ʼ´`](?=[^\\W_])")
# Spaces typed (or dictated) inside a Chinese word: "导 出".
_HAN_GAP = re.compile(f"(?<=[{_HAN_CLASS}])[ \t]+(?=[{_HAN_CLASS}])")
_QUOTE_MARK = re.compile("[\"“„«「『《【‘]|(?<![\\w'])'")
_QUOTED = re.compile(
    r"\"[^\"]*\"|“[^”]*”|„[^“”]*[“”]|«[^»]*»|「[^」]*」|『[^』]*』|《[^》]*》|【[^】]*】"
    r"|(?<![\w'])'[^']+'(?![\w'])|‘[^’]*’"
)


def normalize(text: str) -> str:
    """Visible characters only, NFKC, casefold, plain apostrophes, and mainland simplified
    Chinese without spaces inside it when Han is present."""
    if not text.isascii():
        text = _UNSAFE.sub(" ", text)
        text = _INVISIBLE.sub("", text)
        text = unicodedata.normalize("NFKC", text)
        text = _APOSTROPHE.sub("'", text)
    text = text.casefold()
    if HAN.search(text):
        text = _HAN_GAP.sub("", text)
        text = _HANT_KEYWORD.sub(lambda m: _HANT_KEYWORDS[m.group()], text)
        text = _T2S.convert(text)
    return text


def split_quotes(text: str) -> tuple[str, tuple[str, ...]]:
    """Return the text with quoted spans blanked out, and the quoted spans."""
    if _QUOTE_MARK.search(text) is None:
        return text, ()
    quoted = tuple(m.group(0)[1:-1] for m in _QUOTED.finditer(text))
    if not quoted:
        return text, ()
    return _QUOTED.sub(" ", text), quoted


def extract_urls(text: str) -> tuple[str, ...]:
    """The http(s) URLs in the text, in order, without trailing punctuation."""
    if "://" not in text:
        return ()
    found: dict[str, None] = {}
    for match in URL.finditer(text):
        url = match.group(0)
        while url and url[-1] in _URL_TAIL:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break  # a balanced parenthesis belongs to the link (wiki/Foo_(bar))
            url = url[:-1]
        if len(url) > url.index("://") + 3:
            found[url] = None
            if len(found) >= _MAX_URLS:
                break
    return tuple(found)


def lang_of(words: list[str], has_han: bool) -> Lang:
    """en, zh or mixed from the words already found (format words stay neutral)."""
    if not has_han:
        return "en"
    for word in words:
        if word not in RULES.lang_neutral and not word.isdigit() and any(c.isalpha() for c in word):
            return "mixed"
    return "zh"


def detect_lang(text: str) -> Lang:
    """en, zh or mixed: Chinese with Latin words around it is mixed ("export 一下")."""
    body = URL.sub(" ", text) if "://" in text else text
    norm = normalize(body)
    return lang_of(WORD.findall(norm), HAN.search(norm) is not None)
