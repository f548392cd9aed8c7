"""Logging set-up: one line per event (plain or JSON), and secrets never written."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import TextIO

from backend import redact

# Fields that are credentials by name, whatever they look like: the client id is traded
# for a fresh token of the same user. A short prefix still lets lines be matched up.
_CREDENTIAL_FIELDS = frozenset({"client_id"})
_SHOWN_PREFIX = 4
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
        return redact(text, self._secrets)

    def scrub_value(self, value: object) -> object:
        """Strings scrubbed, containers rebuilt with scrubbed strings, numbers kept, and
        anything else logged as its scrubbed text (a repr may carry a secret)."""
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(v) for v in value]
        return self.scrub(str(value))

    def scrub_field(self, key: str, value: object) -> object:
        """A field's value scrubbed; a credential field shows only its first characters."""
        if key in _CREDENTIAL_FIELDS and value is not None:
            text = str(value)
            return f"{text[:_SHOWN_PREFIX]}…" if len(text) > _SHOWN_PREFIX else "…"
        return self.scrub_value(value)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not crash the caller
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, self.scrub_field(key, value))
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
_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar(
    "nemobot_log_context", default=MappingProxyType({})
)


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Fields (chat_id, update_id…) added to every line logged inside, including the
    backend call lines of the composition root, which cannot know the chat themselves."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Adds the `log_context` fields a record does not carry already."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """An error nothing caught is logged like any other line: redacted, one record."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("nemobot").critical(
        "uncaught error: %s", kind.__name__, exc_info=(kind, error, trace)
    )


def configure(
    level: str = "INFO",
    json_lines: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Install one handler on the root logger (on `stream`, stderr by default); call once
    at start-up."""
    for secret in secrets:
        REDACTOR.add(secret)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(REDACTOR)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    sys.excepthook = _log_uncaught
    # Libraries that log request URLs (which carry the bot token) stay quiet below WARNING.
    for noisy in ("httpx", "httpcore", "telegram.ext.Updater", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
