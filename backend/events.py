"""ADK `/run_sse` stream → typed chat events. Pure: bytes in, events out, no I/O.

Lines are split here rather than by httpx-sse, whose public reader (`aiter_sse`) drops
three things the service sends and this module keeps: `:` comment keep-alives, older
crash lines without `data:`, and an event left unterminated when the stream closes.
Each event's JSON becomes the few things the bot cares about.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Only text not shown before: partial chunks merged, repeated final text dropped."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateDelta:
    delta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Bytes arrived but nothing to show: the agent is still working."""


@dataclass(frozen=True, slots=True)
class ModelError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class AgentCrash:
    message: str


@dataclass(frozen=True, slots=True)
class TurnComplete:
    """The agent finished the turn (said so, or closed the stream cleanly)."""


ChatEvent = (
    TextDelta
    | ToolCall
    | ToolResult
    | StateDelta
    | KeepAlive
    | ModelError
    | AgentCrash
    | TurnComplete
)

_KEEPALIVE = KeepAlive()
_TURN_COMPLETE = TurnComplete()
_KEEPALIVE_TYPES = frozenset({"heartbeat", "ping", "keepalive", "keep-alive", "keep_alive"})
# A crash line that is not valid JSON: pull the message out of `"error": "…"` (or single quotes).
_ERROR_FIELD = re.compile(r"""["']error["']\s*:\s*(?:"((?:[^"\\]|\\.)*)|'((?:[^'\\]|\\.)*))""")
_MAX_CRASH = 500


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    return {"result": value}


class EventDecoder:
    """Decodes one event's `data` into typed events, remembering partial text."""

    __slots__ = ("_shown", "_shown_len", "crashed", "turn_complete")

    def __init__(self) -> None:
        # Text of the current partial run already given out, kept in pieces (joined lazily)
        # so a long reply of many chunks costs linear time.
        self._shown: list[str] = []
        self._shown_len = 0
        self.crashed = False
        self.turn_complete = False

    def decode(self, data: str) -> list[ChatEvent]:
        """Events for one SSE `data` payload (possibly several joined lines)."""
        out: list[ChatEvent] = []
        self.decode_into(data, out)
        return out

    def decode_into(self, data: str, out: list[ChatEvent]) -> None:
        """`decode`, appending to `out` (the stream parser's loop)."""
        out.extend(self._decode(data))

    def _decode(self, data: str) -> list[ChatEvent]:
        if not data or data.isspace():
            return [_KEEPALIVE]
        try:
            obj = json.loads(data)
        except ValueError:
            return self._not_json(data)
        if not isinstance(obj, dict):
            log.warning("sse: skipped non-object event", extra={"kind": type(obj).__name__})
            return []
        kind = obj.get("type")
        if isinstance(kind, str):  # gateway keep-alives and the older event shapes
            return self._typed(kind, obj)
        if "content" in obj or "errorCode" in obj or "actions" in obj or "turnComplete" in obj:
            return self._adk(obj)
        if "error" in obj:
            return [self._crash(_error_message(obj))]
        log.warning("sse: skipped unknown event", extra={"keys": ",".join(sorted(obj)[:10])})
        return []

    # --- ADK events --------------------------------------------------------------------

    def _adk(self, obj: dict[str, Any]) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        partial = obj.get("partial") is True
        content = obj.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        texts: list[str] = []
        calls: list[ChatEvent] = []
        if isinstance(parts, list):
            for part in parts:
                if not isinstance(part, dict):
                    continue
                text = part.get("text")
                if isinstance(text, str):
                    if not part.get("thought"):
                        texts.append(text)
                    continue
                call = part.get("functionCall")
                if isinstance(call, dict):
                    calls.append(ToolCall(str(call.get("name") or ""), _as_dict(call.get("args"))))
                    continue
                response = part.get("functionResponse")
                if isinstance(response, dict):
                    calls.append(
                        ToolResult(
                            str(response.get("name") or ""), _as_dict(response.get("response"))
                        )
                    )
        if texts:
            new = self._merge("".join(texts), partial)
            if new:
                out.append(TextDelta(new))
        elif not partial and parts:
            self._forget()
        out.extend(calls)
        actions = obj.get("actions")
        if isinstance(actions, dict):
            delta = actions.get("stateDelta")
            if isinstance(delta, dict) and delta:
                out.append(StateDelta(delta))
        code = obj.get("errorCode")
        if code is not None:
            message = obj.get("errorMessage")
            out.append(ModelError(str(code), str(message) if message is not None else ""))
        if obj.get("turnComplete") is True and not self.turn_complete:
            self.turn_complete = True
            out.append(_TURN_COMPLETE)
        return out

    def _merge(self, text: str, partial: bool) -> str:
        """The part of `text` not yet shown, for delta or cumulative chunks and final repeats."""
        if partial:
            if self._shown_len and len(text) > self._shown_len:
                shown = self._joined()
                if text.startswith(shown):  # a cumulative chunk: the whole text so far
                    self._shown, self._shown_len = [text], len(text)
                    return text[len(shown) :]
            self._shown.append(text)
            self._shown_len += len(text)
            return text
        # A final (non-partial) event: often the whole text again.
        if not self._shown_len:
            self._forget()
            return text
        shown = self._joined()
        self._forget()
        if text.startswith(shown):
            return text[len(shown) :]
        if shown.startswith(text) or shown.endswith(text):
            return ""
        return text

    def _joined(self) -> str:
        if len(self._shown) != 1:
            self._shown = ["".join(self._shown)]
        return self._shown[0]

    def _forget(self) -> None:
        self._shown = []
        self._shown_len = 0

    # --- older and gateway shapes ------------------------------------------------------

    def _typed(self, kind: str, obj: dict[str, Any]) -> list[ChatEvent]:
        kind = kind.lower()
        if kind in _KEEPALIVE_TYPES:
            return [_KEEPALIVE]
        if kind == "text":
            value = obj.get("content", obj.get("text"))
            if isinstance(value, dict):
                value = value.get("text")
            if not isinstance(value, str):
                return []
            new = self._merge(value, obj.get("partial") is not False)
            return [TextDelta(new)] if new else []
        if kind in ("tool_call", "function_call"):
            name = obj.get("name") or obj.get("tool") or obj.get("tool_name") or ""
            args = obj.get("args", obj.get("input", obj.get("arguments")))
            return [ToolCall(str(name), _as_dict(args))]
        if kind in ("tool_result", "function_response"):
            name = obj.get("name") or obj.get("tool") or obj.get("tool_name") or ""
            result = obj.get("result", obj.get("output", obj.get("response", obj.get("content"))))
            return [ToolResult(str(name), _as_dict(result))]
        if kind in ("done", "end", "turn_complete", "complete"):
            if self.turn_complete:
                return []
            self.turn_complete = True
            return [_TURN_COMPLETE]
        if kind == "error":
            message = obj.get("message") or obj.get("error") or obj.get("content") or ""
            return [ModelError(str(obj.get("code") or "ERROR"), str(message))]
        log.warning("sse: skipped unknown event type", extra={"type": kind[:40]})
        return []

    def _not_json(self, data: str) -> list[ChatEvent]:
        head = data.lstrip()[:20].lower()
        if "error" in head:
            match = _ERROR_FIELD.search(data)
            if match:
                raw = match.group(1) if match.group(1) is not None else match.group(2)
                try:
                    message = json.loads(f'"{raw}"') if match.group(1) is not None else raw
                except ValueError:
                    message = raw
            else:
                message = data.strip()
            return [self._crash(str(message))]
        log.warning("sse: skipped malformed event", extra={"length": len(data)})
        return []

    def _crash(self, message: str) -> AgentCrash:
        self.crashed = True
        message = message.strip() or "agent crashed"
        return AgentCrash(message[:_MAX_CRASH])


def _error_message(obj: Mapping[str, Any]) -> str:
    error = obj.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "error_message", "detail"):
            if isinstance(error.get(key), str):
                return str(error[key])
    details = obj.get("error_details")
    if isinstance(details, dict) and isinstance(details.get("error_message"), str):
        return str(details["error_message"])
    return json.dumps(error, ensure_ascii=False) if error is not None else "agent crashed"


class StreamParser:
    """Incremental SSE parser: feed raw bytes as they arrive, get typed events.

    Differences from a plain SSE reader, on purpose: `:` comments come out as
    keep-alives, a bare `{…}` line is read as data (older crash lines), and an event
    left unterminated when the stream closes is still decoded.
    """

    __slots__ = ("_data", "_events", "_lines", "_text")

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines = _LineSplitter()
        self._data: list[str] = []
        self._events = EventDecoder()

    @property
    def crashed(self) -> bool:
        return self._events.crashed

    @property
    def turn_complete(self) -> bool:
        return self._events.turn_complete

    def feed(self, chunk: bytes) -> list[ChatEvent]:
        if not chunk:
            return []
        text = self._text.decode(chunk)
        if not text:
            return []
        return self._lines_to_events(self._lines.split(text))

    def close(self) -> list[ChatEvent]:
        """Flush at end of stream: a last line without newline, a last event without blank line."""
        tail = self._text.decode(b"", final=True)
        lines = self._lines.split(tail) if tail else []
        lines.extend(self._lines.flush())
        out = self._lines_to_events(lines)
        if self._data:
            out.extend(self._dispatch())
        return out

    def _lines_to_events(self, lines: list[str]) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        data = self._data
        decode_into = self._events.decode_into
        for line in lines:
            if not line:
                if data:
                    decode_into(data[0] if len(data) == 1 else "\n".join(data), out)
                    data.clear()
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith("data:"):
                data.append(line[5:])
            elif line[0] == ":":
                out.append(_KEEPALIVE)
            elif line[0] == "{":
                data.append(line)
            # event:, id:, retry: and unknown fields carry nothing we use.
        return out

    def _dispatch(self) -> list[ChatEvent]:
        data = "\n".join(self._data) if len(self._data) > 1 else self._data[0]
        self._data.clear()
        return self._events.decode(data)


_LINE_END = re.compile(r"\r\n|\r|\n")


class _LineSplitter:
    """Text pieces → whole lines, ended by CRLF, CR or LF only (the SSE rule: not the other
    breaks `str.splitlines` knows, which a JSON string may hold raw). A CR at the end of a
    piece waits for the next one, which may start with the LF of the same line end."""

    __slots__ = ("_cr", "_rest")

    def __init__(self) -> None:
        self._rest: list[str] = []  # the unfinished line, in pieces
        self._cr = False

    def split(self, text: str) -> list[str]:
        if self._cr:
            text = "\r" + text
        self._cr = text.endswith("\r")
        if self._cr:
            text = text[:-1]
        lines = _LINE_END.split(text)
        if len(lines) == 1:  # no line end yet
            self._rest.append(text)
            return []
        if self._rest:
            lines[0] = "".join(self._rest) + lines[0]
        last = lines.pop()
        self._rest = [last] if last else []
        return lines

    def flush(self) -> list[str]:
        """The last line when the stream ends without a line end."""
        ended = bool(self._rest) or self._cr
        line = "".join(self._rest)
        self._rest, self._cr = [], False
        return [line] if ended else []
