"""The bilingual intent router: text in, an explainable Decision out. Pure, no I/O."""

from router.classify import classify
from router.gui import read_agent_text
from router.text import detect_lang, extract_urls, normalize
from router.types import Decision, ExportOptions, GuiAction, GuiHint, Intent, Lang

__all__ = [
    "Decision",
    "ExportOptions",
    "GuiAction",
    "GuiHint",
    "Intent",
    "Lang",
    "classify",
    "detect_lang",
    "extract_urls",
    "normalize",
    "read_agent_text",
]
