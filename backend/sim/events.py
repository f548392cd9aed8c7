"""ADK `/run_sse` event lines, shaped like the recorded capture (camelCase, empty dicts kept)."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from typing import Any

AUTHOR = "nemo_agent"
_CJK = re.compile(r"[\u3400-\u9fff]")

# Garbage a flaky gateway might interleave; a tolerant reader skips every one of these.
MALFORMED_LINES: tuple[str, ...] = (
    'data: {"content":{"parts":[{"text":"unterminated',
    "data: [1, 2, 3]",
    'data: "just a string"',
    'data: {"type":"mystery","payload":{"x":1}}',
    "data: not json at all",
    "retry: soon",
    "data: null",
)


def encode(payload: dict[str, Any]) -> bytes:
    """One SSE event: `data: <compact json>` and a blank line (no event:/id: lines)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def keepalive(style: str, n: int) -> bytes:
    """A gateway keep-alive; "mixed" cycles heartbeat event, empty data line and comment."""
    if style == "mixed":
        style = ("heartbeat", "empty", "comment")[n % 3]
    if style == "empty":
        return b"data: \n\n"
    if style == "comment":
        return b": keep-alive\n\n"
    return b'data: {"type":"heartbeat"}\n\n'


def crash_line(message: str, style: str, now: float | None = None) -> bytes:
    """The ADK server's last line when the agent raises (json.dumps default spacing)."""
    error = f"RuntimeError: {message}"
    if style == "plain":
        return f"data: {json.dumps({'error': error})}\n\n".encode()
    if style == "broken":
        return f'data: {{"error": "{error}\n\n'.encode()
    details = {
        "error_type": "RuntimeError",
        "error_message": message,
        "timestamp": time.time() if now is None else now,
    }
    return f"data: {json.dumps({'error': error, 'error_details': details})}\n\n".encode()


class EventFactory:
    """Builds the events of one invocation, sharing its invocation id."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.invocation_id = f"e-{self._uuid()}"
        self._calls = 0

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _event(
        self,
        head: dict[str, Any],
        state_delta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            **head,
            "invocationId": self.invocation_id,
            "author": AUTHOR,
            "actions": {
                "stateDelta": state_delta or {},
                "artifactDelta": {},
                "requestedAuthConfigs": {},
                "requestedToolConfirmations": {},
            },
            "nodeInfo": {"path": ""},
            "id": self._uuid(),
            "timestamp": time.time(),
        }

    def text(self, text: str, *, partial: bool = False, final: bool = False) -> dict[str, Any]:
        head: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if partial:
            head["partial"] = True
        if final:
            head["turnComplete"] = True
        return self._event(head)

    def function_call(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._calls += 1
        call_id = f"call_{self._calls}"
        part = {"functionCall": {"id": call_id, "args": args, "name": name}}
        return call_id, self._event({"content": {"parts": [part], "role": "model"}})

    def function_response(
        self, call_id: str, name: str, response: dict[str, Any], draft: dict[str, Any]
    ) -> dict[str, Any]:
        part = {"functionResponse": {"id": call_id, "name": name, "response": response}}
        return self._event(
            {"content": {"parts": [part], "role": "user"}}, state_delta={"draft": draft}
        )

    def turn_complete(self) -> dict[str, Any]:
        return self._event({"turnComplete": True})

    def model_error(self, code: str, message: str) -> dict[str, Any]:
        return self._event({"errorCode": code, "errorMessage": message})


def chunks(text: str, words: int) -> list[str]:
    """Splits text into growing-stream pieces that concatenate back to exactly `text`."""
    if not text:
        return []
    if " " not in text.strip() or _CJK.search(text):
        size = max(words * 3, 1)
        return [text[i : i + size] for i in range(0, len(text), size)]
    pieces: list[str] = []
    tokens = text.split(" ")
    for i in range(0, len(tokens), max(words, 1)):
        piece = " ".join(tokens[i : i + max(words, 1)])
        pieces.append(piece if i + words >= len(tokens) else piece + " ")
    return [p for p in pieces if p]
