"""The Telegram front end: PTB updates in, the conversation's operations rendered out."""

from bot.telegram.format import markdown_to_html, split_text
from bot.telegram.front import ALLOWED_UPDATES, TelegramConfig, TelegramFront
from bot.telegram.outbox import FrontStats, RenderConfig, Renderer, TelegramOutbox

__all__ = [
    "ALLOWED_UPDATES",
    "FrontStats",
    "RenderConfig",
    "Renderer",
    "TelegramConfig",
    "TelegramFront",
    "TelegramOutbox",
    "markdown_to_html",
    "split_text",
]
