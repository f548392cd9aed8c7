"""The agent's editor-speak ("Click Export to download it.") rewritten in place into what
works where the user is, so the reply holds one instruction, and one that can be followed.

The router says which action a clause points to; this swaps the clause for the front
end's own words and leaves every other character of the reply as the agent wrote it.
"""

from __future__ import annotations

import re

from router import GuiAction, read_agent_text

__all__ = ["marked_words", "rewrite_gui"]

# A clause with its closing punctuation and trailing blanks, or a line break: joined
# together the pieces are the text again.
_CLAUSES = re.compile(r"[^.!?:;。！？：；\n]*[.!?:;。！？：；]+[ \t]*|[^.!?:;。！？：；\n]+|\n")
_MARKUP_CHARS = frozenset("*_`~")


def rewrite_gui(text: str, action: GuiAction, instead: str) -> str:
    """`text` with its first clause pointing to `action` replaced by `instead` (or dropped,
    when `instead` is empty) and any later such clause dropped. An `instead` of several
    lines (a timeline) is a paragraph of its own, not run into the sentences around it."""
    pieces: list[str] = []
    replaced = False
    block = "\n" in instead.strip()
    after_block = False  # the words that follow a block on its line start a paragraph
    for match in _CLAUSES.finditer(text):
        clause = match.group(0)
        if clause.strip() and read_agent_text(clause).action is action:
            if not replaced and instead:
                if block:
                    pieces = [_paragraph_end("".join(pieces)), instead.strip()]
                    after_block = True
                else:
                    trailing = clause[len(clause.rstrip()) :]
                    pieces.append(instead + trailing)
            replaced = True
            continue
        if after_block and clause != "\n":
            if not clause.strip():
                continue
            pieces.append("\n\n")
            clause = clause.lstrip()
        after_block = False
        pieces.append(clause)
    return "".join(pieces).strip() if replaced else text


def _paragraph_end(head: str) -> str:
    """`head` ending where a new paragraph may start: after a line break it has, or two."""
    head = head.rstrip(" \t")
    return head if not head or head.endswith("\n") else head + "\n\n"


def marked_words(text: str) -> tuple[str, ...]:
    """The words of a user's message that hold Markdown characters (`**wow**`), as typed:
    quoted back to them, they stay literal."""
    words = (word.strip("\"'“”‘’「」()[]{}.,!?;:，。！？；：") for word in text.split())
    return tuple(dict.fromkeys(w for w in words if _MARKUP_CHARS.intersection(w)))
