"""The simulator's events have the same shape as the recorded ADK capture, key for key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.sim_fixtures import fast, running

_CAPTURE = Path(__file__).with_name("data") / "adk-sse-capture.txt"
_SHARED = Path("/work/shared/design/adk-sse-capture.txt")


def _capture() -> dict[str, list[str]]:
    """Each captured stream's `data:` payloads, keyed by the message that produced it."""
    text = (_CAPTURE if _CAPTURE.exists() else _SHARED).read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for section in text.split("### ")[1:]:
        head, _, body = section.partition("\n")
        out[head.split("'")[1]] = [
            line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")
        ]
    return out


def _shape(value: Any) -> Any:
    """Key order and value types, without the values."""
    if isinstance(value, dict):
        return [(k, _shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def _without_payload(event: dict[str, Any]) -> dict[str, Any]:
    """The event with tool args and the draft emptied: their content is the agent's business."""
    clone: dict[str, Any] = json.loads(json.dumps(event))
    for part in (clone.get("content") or {}).get("parts", []):
        if "functionCall" in part:
            part["functionCall"]["args"] = {}
    if clone.get("actions", {}).get("stateDelta"):
        clone["actions"]["stateDelta"] = {"draft": {}}
    return clone


async def test_edit_turn_events_match_the_capture() -> None:
    captured = [json.loads(line) for line in _capture()["add title"]]
    async with running(fast(no_text_every=0)) as api:
        await api.login()
        sid = await api.new_session()
        stream = await api.chat(sid, "add title")
    events = stream.adk
    partial = events[0]
    call = next(e for e in events if "functionCall" in e["content"]["parts"][0])
    response = next(e for e in events if "functionResponse" in e["content"]["parts"][0])
    final = events[-1]
    pairs = zip(captured, (partial, call, response, final), strict=True)
    for mine, theirs in ((_without_payload(m), _without_payload(t)) for t, m in pairs):
        assert _shape(mine) == _shape(theirs)
    assert call["content"]["parts"][0]["functionCall"]["name"] == "edit_multitrack"
    assert call["content"]["parts"][0]["functionCall"]["args"]["op"] == "add_title"
    tracks = response["actions"]["stateDelta"]["draft"]["t"]
    assert tracks[0]["tt"] == 7 and tracks[0]["sg"][0]["d"] == 3000


async def test_model_error_and_crash_lines_match_the_capture() -> None:
    capture = _capture()
    (llm_error,) = [json.loads(line) for line in capture["llmerr"]]
    (crash_line,) = capture["boom"]
    async with running(fast()) as api:
        await api.login()
        sid = await api.new_session()
        api.sim.set_fault("model_error", code="MALFORMED_FUNCTION_CALL", message="bad call")
        model_error = (await api.chat(sid, "hi")).adk
        api.sim.set_fault("agent_crash", after=0, message="scripted failure")
        crash = await api.chat_raw(sid, "hi")
    assert [_shape(e) for e in model_error] == [_shape(llm_error)]
    assert (model_error[0]["errorCode"], model_error[0]["errorMessage"]) == (
        "MALFORMED_FUNCTION_CALL",
        "bad call",
    )
    line = crash.text.removeprefix("data: ").rstrip("\n")
    assert _shape(json.loads(line)) == _shape(json.loads(crash_line))
    head = crash_line.split(', "timestamp"')[0]
    assert line.split(', "timestamp"')[0] == head  # same spacing and wording as the ADK server
