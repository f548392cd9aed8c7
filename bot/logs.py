"""Logging set-up: one line per event (plain or JSON), and secrets never written."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

# Shapes of the secrets we handle, masked even when nobody registered them.
_SECRET_SHAPES = re.compile(
    r"\b\d{6,12}:[A-Za-z0-9_-]{30,}|\bnmv_[a-z]+_[A-Za-z0-9_-]{8,}|clm_[A-Za-z0-9_-]{8,}"
)
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class Redactor(logging.Filter):
    """Masks known secrets and secret-shaped strings in every record's text and extras."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SECRET_SHAPES.sub("***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with every `extra=` field kept."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS:
                body[key] = value
        if record.exc_text:
            body["exc"] = record.exc_text
        return json.dumps(body, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """`time level logger: event key=value…`, readable in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS
        )
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line} {extras}"
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


REDACTOR = Redactor()


def configure(level: str = "INFO", json_lines: bool = False, secrets: Iterable[str] = ()) -> None:
    """Install one handler on the root logger; call once at start-up."""
    for secret in secrets:
        REDACTOR.add(secret)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(REDACTOR)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log request URLs (which carry the bot token) stay quiet below WARNING.
    for noisy in ("httpx", "httpcore", "telegram.ext.Updater", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
