"""A fake Telegram Bot API server for tests: real HTTP on 127.0.0.1, the real wire format."""

from tests.fake_botapi.markup import ParseError, visible_text
from tests.fake_botapi.server import MB, ApiCall, BotMessage, FakeBotApi, StoredFile, TgUser

__all__ = [
    "MB",
    "ApiCall",
    "BotMessage",
    "FakeBotApi",
    "ParseError",
    "StoredFile",
    "TgUser",
    "visible_text",
]
