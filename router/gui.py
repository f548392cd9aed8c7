"""Read the agent's editor-speak ("click Export", "点击导出") as the action it implies.

The agent writes for a web editor our users do not have; the bot turns these
instructions into its own buttons or actions instead of repeating them.
"""

from __future__ import annotations

import re

from router.rules import RULES
from router.text import normalize
from router.types import GuiAction, GuiHint

_SENTENCES = re.compile(r"[^.!?。！？;；\n]+")
_NEGATED = re.compile(
    r"(?<![\w'])(?:don'?t|do not|never|not yet|no need)(?![\w'])|不要|别|先别|不用|无需"
)
# Markdown and HTML emphasis around button names: **Export**, `Export`, <b>Export</b>.
_MARKUP = re.compile(r"[*_`~]|</?(?:b|i|u|em|strong|code)>", re.IGNORECASE)
_NONE = GuiHint(GuiAction.NONE, "")


def read_agent_text(text: str) -> GuiHint:
    """The action an agent message points the user to; NONE when it points nowhere."""
    if not text or text.isspace():
        return _NONE
    norm = normalize(_MARKUP.sub("", text[:20000]))
    for action, patterns in (
        (GuiAction.EXPORT, RULES.gui_export),
        (GuiAction.STATUS, RULES.gui_status),
    ):
        for sentence in _SENTENCES.finditer(norm):
            part = sentence.group(0)
            for pattern in patterns:
                m = pattern.search(part)
                if m is not None and not _NEGATED.search(part[: m.start()]):
                    return GuiHint(action, m.group(0).strip())
    return _NONE
