"""SSE decoding: the real ADK capture byte for byte, every chunk boundary, CRLF, odd shapes."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import (
    AgentCrash,
    ChatEvent,
    EventDecoder,
    KeepAlive,
    ModelError,
    StateDelta,
    StreamParser,
    TextDelta,
    ToolCall,
    ToolResult,
    TurnComplete,
)
from tests.backend_fixtures import capture_bytes, capture_streams

STREAMS = capture_streams()
EXPECTED: dict[str, list[ChatEvent]] = {
    "add title": [
        TextDelta("Working on "),
        ToolCall("edit_multitrack", {"op": "add_title", "text": "add title"}),
        ToolResult("edit_multitrack", {"ok": True}),
        StateDelta({"draft": {"t": [{"tt": 7, "sg": [{"d": 3000}]}]}}),
        TextDelta("Done: add title"),
        TurnComplete(),
    ],
    "llmerr": [ModelError("MALFORMED_FUNCTION_CALL", "bad call")],
    "boom": [AgentCrash("RuntimeError: scripted failure")],
}


def parse(*chunks: bytes) -> list[ChatEvent]:
    parser = StreamParser()
    out: list[ChatEvent] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    out.extend(parser.close())
    return out


def adk(text: str | None = None, **extra: object) -> bytes:
    event: dict[str, object] = {"invocationId": "e-1", "author": "nemo_agent"}
    if text is not None:
        event["content"] = {"parts": [{"text": text}], "role": "model"}
    event["actions"] = {"stateDelta": {}, "artifactDelta": {}}
    event.update(extra)
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def test_capture_has_the_three_streams() -> None:
    assert set(STREAMS) == set(EXPECTED)


def test_capture_decodes_byte_for_byte() -> None:
    for message, body in STREAMS.items():
        assert parse(body) == EXPECTED[message], message


def test_capture_split_at_every_boundary() -> None:
    for message, body in STREAMS.items():
        for cut in range(len(body) + 1):
            assert parse(body[:cut], body[cut:]) == EXPECTED[message], (message, cut)


def test_capture_fed_one_byte_at_a_time() -> None:
    for message, body in STREAMS.items():
        chunks = [body[i : i + 1] for i in range(len(body))]
        assert parse(*chunks) == EXPECTED[message]


def test_capture_with_crlf_and_cr_line_endings() -> None:
    for message, body in STREAMS.items():
        crlf = body.replace(b"\n", b"\r\n")
        assert parse(crlf) == EXPECTED[message]
        for cut in range(len(crlf) + 1):
            assert parse(crlf[:cut], crlf[cut:]) == EXPECTED[message], (message, cut)
        assert parse(body.replace(b"\n", b"\r")) == EXPECTED[message]


def test_all_streams_back_to_back_in_one_body() -> None:
    body = b"".join(STREAMS[m] for m in ("add title", "llmerr", "boom"))
    events = parse(body)
    assert events[:5] == EXPECTED["add title"][:5]
    assert ModelError("MALFORMED_FUNCTION_CALL", "bad call") in events
    assert events[-1] == AgentCrash("RuntimeError: scripted failure")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    body = b"".join(STREAMS.values())
    points = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    assert parse(*chunks) == parse(body)


def test_multibyte_text_split_inside_a_character() -> None:
    body = adk("你好，世界", turnComplete=True)
    for cut in range(len(body) + 1):
        assert parse(body[:cut], body[cut:])[0] == TextDelta("你好，世界")


# --- partial text merging -----------------------------------------------------------------


def texts(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_partial_chunks_then_repeated_final_text_shows_once() -> None:
    body = (
        adk("Adding ", partial=True)
        + adk("a title", partial=True)
        + adk("Adding a title", turnComplete=True)
    )
    events = parse(body)
    assert [e for e in events if isinstance(e, TextDelta)] == [
        TextDelta("Adding "),
        TextDelta("a title"),
    ]
    assert events[-1] == TurnComplete()


def test_final_text_longer_than_the_partials_adds_only_the_rest() -> None:
    body = adk("Hello ", partial=True) + adk("Hello world")
    assert [e for e in parse(body) if isinstance(e, TextDelta)] == [
        TextDelta("Hello "),
        TextDelta("world"),
    ]


def test_cumulative_partial_chunks_are_merged() -> None:
    body = adk("Ren", partial=True) + adk("Rendering", partial=True) + adk("Rendering")
    assert texts(parse(body)) == "Rendering"


def test_partials_reset_after_a_tool_call() -> None:
    call = {"content": {"parts": [{"functionCall": {"name": "gen", "args": {}}}]}}
    body = (
        adk("Working", partial=True)
        + b"data: "
        + json.dumps(call).encode()
        + b"\n\n"
        + adk("Done", partial=True)
        + adk("Done: video ready")
    )
    assert texts(parse(body)) == "WorkingDone: video ready"


def test_thought_parts_stay_hidden() -> None:
    event = {"content": {"parts": [{"text": "thinking…", "thought": True}, {"text": "Hi"}]}}
    assert parse(b"data: " + json.dumps(event).encode() + b"\n\n") == [TextDelta("Hi")]


def test_turn_complete_given_once() -> None:
    body = adk("a", turnComplete=True) + adk(None, turnComplete=True)
    assert parse(body).count(TurnComplete()) == 1


# --- keep-alives, older shapes, crashes, garbage --------------------------------------------


def test_keepalive_shapes() -> None:
    body = b'data:\n\n: ping\n\ndata: {"type":"heartbeat"}\n\ndata: \n\n:\n\n'
    assert parse(body) == [KeepAlive()] * 5


def test_older_typed_events() -> None:
    body = (
        b'data: {"type":"text","content":"Hi "}\n\n'
        b'data: {"type":"tool_call","name":"gen","args":{"p":1}}\n\n'
        b'data: {"type":"tool_result","name":"gen","result":"ok"}\n\n'
        b'data: {"type":"text","content":"there"}\n\n'
    )
    assert parse(body) == [
        TextDelta("Hi "),
        ToolCall("gen", {"p": 1}),
        ToolResult("gen", {"result": "ok"}),
        TextDelta("there"),
    ]


def test_unknown_and_malformed_lines_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    body = (
        b'data: {"weird": 1}\n\n'
        b"data: {not json at all\n\n"
        b"data: [1, 2]\n\n"
        b'data: {"type":"mystery"}\n\n'
        b"event: something\nid: 3\nretry: 10\n\n" + adk("still fine")
    )
    with caplog.at_level(logging.WARNING, logger="backend.events"):
        assert parse(body) == [TextDelta("still fine")]
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 4


def test_crash_line_that_is_not_json() -> None:
    body = b'data: {"error": "ValueError: can\'t parse \'x\'", "error_details": {oops}\n\n'
    assert parse(body) == [AgentCrash("ValueError: can't parse 'x'")]
    python_repr = b"data: {'error': 'KeyError: draft'}\n\n"
    assert parse(python_repr) == [AgentCrash("KeyError: draft")]
    truncated = b'data: {"error": "Runtime'
    assert parse(truncated) == [AgentCrash("Runtime")]


def test_older_crash_line_without_data_prefix_or_final_newline() -> None:
    body = adk("partial", partial=True) + b'{"error": "boom"}'
    assert parse(body) == [TextDelta("partial"), AgentCrash("boom")]


def test_error_object_crash_shape() -> None:
    body = b'data: {"error": {"message": "quota exceeded"}}\n\n'
    assert parse(body) == [AgentCrash("quota exceeded")]


def test_unterminated_last_event_is_still_read() -> None:
    assert parse(adk("bye").rstrip(b"\n")) == [TextDelta("bye")]


def test_multiline_data_is_joined() -> None:
    body = b'data: {"content": {"parts":\ndata: [{"text": "two lines"}]}}\n\n'
    assert parse(body) == [TextDelta("two lines")]


def test_decoder_is_usable_alone() -> None:
    decoder = EventDecoder()
    assert decoder.decode("") == [KeepAlive()]
    assert decoder.decode('{"errorCode":"SAFETY","errorMessage":"blocked"}') == [
        ModelError("SAFETY", "blocked")
    ]
    assert not decoder.crashed
    assert decoder.decode('{"error":"x"}') == [AgentCrash("x")]
    assert decoder.crashed


def test_only_cr_and_lf_end_a_line() -> None:
    # JSON may carry these raw inside a string; str.splitlines would cut the event there.
    text = "a\u2028b\u0085c\x0bd\x1ce"
    body = b"data: " + json.dumps({"type": "text", "content": text}, ensure_ascii=False).encode()
    assert parse(body + b"\n\n") == [TextDelta(text)]


def test_a_crlf_split_between_pieces_ends_one_line_not_two() -> None:
    body = b'data: {"content": {"parts":\r\ndata: [{"text": "two lines"}]}}\r\n\r\n'
    cut = body.index(b"\r") + 1
    assert parse(body[:cut], body[cut:]) == [TextDelta("two lines")]


def test_whole_capture_file_byte_for_byte() -> None:
    """The file as recorded, header lines included (they are not SSE fields: ignored)."""
    raw = capture_bytes()
    expected = EXPECTED["add title"] + EXPECTED["llmerr"] + EXPECTED["boom"]
    assert parse(raw) == expected
    for cut in range(len(raw) + 1):
        assert parse(raw[:cut], raw[cut:]) == expected, cut
    assert parse(raw.replace(b"\n", b"\r\n")) == expected
