"""Telegram's formatted-text parsers, strict enough to reject what the real server rejects.

They return the visible text (what the user reads) or raise `ParseError` with the real
server's description, so a bot that sends broken HTML or MarkdownV2 sees the same
`Bad Request: can't parse entities: …` error it would see in production.
"""

from __future__ import annotations

import html
import re

__all__ = ["ParseError", "visible_text"]

HTML_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_HTML_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


class ParseError(Exception):
    """Formatted text the real Bot API would refuse; the message is its description."""


def visible_text(text: str, parse_mode: str | None) -> str:
    if not parse_mode:
        return text
    mode = parse_mode.lower()
    if mode == "html":
        return _html(text)
    if mode == "markdownv2":
        return _markdown_v2(text)
    if mode == "markdown":
        return _markdown(text)
    raise ParseError(f"Unsupported parse_mode {parse_mode!r}")


def _offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            match = _TAG.match(text, i)
            if match is None:
                raise ParseError(
                    f"can't parse entities: Unsupported start tag at byte offset {_offset(text, i)}"
                )
            closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
            if name not in HTML_TAGS:
                raise ParseError(
                    f'can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                    f"{_offset(text, i)}"
                )
            if closing:
                if not stack or stack[-1] != name:
                    raise ParseError(
                        f"can't parse entities: Unmatched end tag at byte offset "
                        f'{_offset(text, i)}, expected "</{stack[-1] if stack else ""}>", '
                        f'found "</{name}>"'
                    )
                stack.pop()
            else:
                if name == "a" and "href=" not in attrs:
                    pass  # Telegram accepts a bare <a> and ignores it
                stack.append(name)
            i = match.end()
            continue
        if ch == "&":
            match = _HTML_ENTITY.match(text, i)
            if match is None:
                raise ParseError(
                    "can't parse entities: Character '&' at byte offset "
                    f"{_offset(text, i)} must be escaped"
                )
            out.append(html.unescape(match.group(0)))
            i = match.end()
            continue
        if ch == ">":
            out.append(ch)
            i += 1
            continue
        out.append(ch)
        i += 1
    if stack:
        raise ParseError(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)


_MDV2_NAMES = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}


def _markdown_v2(text: str) -> str:
    out: list[str] = []
    open_marks: list[tuple[str, int]] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                raise ParseError("can't parse entities: Unexpected end of text")
            out.append(text[i + 1])
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise ParseError(
                    "can't parse entities: Can't find end of Pre entity at byte offset "
                    f"{_offset(text, i)}"
                )
            body = text[i + 3 : end]
            if "\n" in body:
                first, rest = body.split("\n", 1)
                body = rest if re.fullmatch(r"[A-Za-z0-9_+-]*", first) else body
            out.append(re.sub(r"\\(.)", r"\1", body))
            i = end + 3
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ParseError(
                    "can't parse entities: Can't find end of Code entity at byte offset "
                    f"{_offset(text, i)}"
                )
            out.append(re.sub(r"\\(.)", r"\1", text[i + 1 : end]))
            i = end + 1
            continue
        mark = None
        for candidate in ("__", "||", "*", "_", "~"):
            if text.startswith(candidate, i):
                mark = candidate
                break
        if mark is not None:
            if open_marks and open_marks[-1][0] == mark:
                open_marks.pop()
            else:
                open_marks.append((mark, i))
            i += len(mark)
            continue
        if ch == "[":
            close = text.find("](", i)
            end = text.find(")", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                raise ParseError(
                    "can't parse entities: Character '[' is reserved and must be escaped with "
                    "the preceding '\\'"
                )
            out.append(_markdown_v2(text[i + 1 : close]))
            i = end + 1
            continue
        if ch in MDV2_RESERVED:
            raise ParseError(
                f"can't parse entities: Character '{ch}' is reserved and must be escaped with "
                "the preceding '\\'"
            )
        out.append(ch)
        i += 1
    if open_marks:
        mark, at = open_marks[-1]
        raise ParseError(
            f"can't parse entities: Can't find end of {_MDV2_NAMES[mark]} entity at byte offset "
            f"{_offset(text, at)}"
        )
    return "".join(out)


def _markdown(text: str) -> str:
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        mark = "```" if text.startswith("```", i) else ch if ch in "*_`" else ""
        if mark:
            end = text.find(mark, i + len(mark))
            if end < 0:
                raise ParseError(
                    "can't parse entities: Can't find end of the entity starting at byte offset "
                    f"{_offset(text, i)}"
                )
            out.append(text[i + len(mark) : end])
            i = end + len(mark)
            continue
        if ch == "[":
            close = text.find("](", i)
            end = text.find(")", close + 2) if close >= 0 else -1
            if close >= 0 and end >= 0:
                out.append(text[i + 1 : close])
                i = end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)
