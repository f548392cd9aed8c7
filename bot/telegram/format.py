"""The agent's Markdown as Telegram HTML, and long texts cut into messages.

Agents write Markdown that Telegram's own Markdown parsers reject half the time, so the
final answer is converted to the small HTML subset Telegram accepts; anything the
converter cannot pair up stays literal text. Streaming edits are sent plain.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection

__all__ = ["TEXT_LIMIT", "html_is_balanced", "markdown_to_html", "split_text", "utf16_len"]

TEXT_LIMIT = 4096

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)\n?(.*?)```", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)([^<>\n]+?)(?<=\S)\*\*|__(?=\S)([^<>\n]+?)(?<=\S)__")
_ITALIC = re.compile(
    r"(?<![\w*])\*(?=[^\s*])([^<>\n*]+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)([^<>\n_]+?)(?<=\S)_(?![\w_])"
)
_STRIKE = re.compile(r"~~(?=\S)([^<>\n]+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]<>\n]+)\]\((https?://[^\s)\"<>]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_TAG = re.compile(r"<(/?)([a-z]+)[^>]*>")


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def markdown_to_html(text: str, literal: Collection[str] = ()) -> str:
    """Telegram HTML for common Markdown: bold, italic, strike, code, links, headings, lists.

    The `literal` fragments (words the user typed, quoted back) are shown as they are."""
    saved: list[str] = []

    def keep(fragment: str) -> str:
        saved.append(fragment)
        return f"\x00{len(saved) - 1}\x00"

    for fragment in sorted({f for f in literal if f.strip()}, key=len, reverse=True):
        text = text.replace(fragment, keep(html.escape(fragment, quote=False)))

    def fence(match: re.Match[str]) -> str:
        lang, body = match.group(1), match.group(2)
        code = html.escape(body.rstrip("\n"), quote=False)
        if lang:
            return keep(f'<pre><code class="language-{lang}">{code}</code></pre>')
        return keep(f"<pre>{code}</pre>")

    out = _FENCE.sub(fence, text)
    out = _INLINE_CODE.sub(
        lambda m: keep(f"<code>{html.escape(m.group(1), quote=False)}</code>"), out
    )
    out = html.escape(out, quote=False)
    out = _LINK.sub(lambda m: keep(f'<a href="{m.group(2)}">{m.group(1)}</a>'), out)
    out = _HEADING.sub(lambda m: f"<b>{m.group(1)}</b>", out)
    out = _BULLET.sub(lambda m: f"{m.group(1)}• ", out)
    out = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", out)
    out = _ITALIC.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", out)
    out = _STRIKE.sub(lambda m: f"<s>{m.group(1)}</s>", out)
    while _PLACEHOLDER.search(out):
        out = _PLACEHOLDER.sub(lambda m: saved[int(m.group(1))], out)
    return out


def html_is_balanced(markup: str) -> bool:
    """Whether every tag is closed in order: cheap insurance before Telegram parses it."""
    stack: list[str] = []
    for match in _TAG.finditer(markup):
        closing, name = match.group(1), match.group(2)
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` UTF-16 units, cut at paragraphs, lines, then spaces.

    A cut inside a fenced code block closes the fence and reopens it in the next piece,
    so the formatting of each piece stands on its own.
    """
    budget = limit - 8  # room to close and reopen a code fence
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _cut_point(rest, budget)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        if head.count("```") % 2 == 1:
            head += "\n```"
            rest = "```\n" + rest
        if head:
            pieces.append(head)
    if rest.strip():
        pieces.append(rest)
    return pieces or [text]


def _cut_point(text: str, budget: int) -> int:
    """The index to cut at: the last paragraph, line or word break within `budget` units."""
    end = 0
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > budget:
            break
        end = index + 1
    window = text[:end]
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at > end // 2:
            return at + len(sep)
    return end
