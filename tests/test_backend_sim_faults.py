"""Every switchable fault of the simulator, armed per test (and per session), over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from backend.sim import FAULT_NAMES, UnknownFault
from tests.sim_fixtures import Api, fast, parse_stream, running


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(fast(no_text_every=0, render_seconds=0.3)) as a:
        await a.login()
        yield a


async def test_fault_names() -> None:
    assert FAULT_NAMES == (
        "token_expired",
        "session_lost",
        "no_credits",
        "rate_limit_once",
        "stream_cut",
        "malformed_events",
        "quiet_stream",
        "agent_crash",
        "model_error",
        "render_fail",
        "render_never_finishes",
        "slow",
        "server_error",
        "export_blocked",
    )


async def test_unknown_fault_is_refused(api: Api) -> None:
    with pytest.raises(UnknownFault):
        api.sim.set_fault("gremlins")
    r = await api.http.post("/_sim/faults", json={"name": "gremlins"})
    assert r.status_code == 400 and r.json()["ok"] is False


async def test_faults_over_http(api: Api) -> None:
    r = await api.http.post(
        "/_sim/faults", json={"name": "slow", "session_id": "42", "params": {"seconds": 0.5}}
    )
    assert r.status_code == 200
    assert r.json() == {
        "ok": True,
        "faults": [
            {
                "name": "slow",
                "session_id": "42",
                "params": {"seconds": 0.5},
                "remaining": None,
                "fired": 0,
            }
        ],
    }
    await api.http.post("/_sim/faults", json={"name": "server_error"})
    listed = (await api.http.get("/_sim/faults")).json()["faults"]
    assert [f["name"] for f in listed] == ["slow", "server_error"]
    r = await api.http.delete("/_sim/faults", params={"name": "slow"})
    assert [f["name"] for f in r.json()["faults"]] == ["server_error"]
    r = await api.http.delete("/_sim/faults")
    assert r.json() == {"ok": True, "faults": []}
    assert (await api.credits()).status_code == 200


async def test_token_expired(api: Api) -> None:
    old = api.token
    api.sim.set_fault("token_expired")
    r = await api.credits()
    assert r.status_code == 401
    assert r.json() == {"code": 1001, "message": "token expired or invalid", "data": None}
    assert (await api.credits()).status_code == 401  # the token stays dead
    await api.login()
    assert api.token != old
    assert (await api.credits()).status_code == 200


async def test_token_expired_for_one_session(api: Api) -> None:
    a = await api.new_session()
    b = await api.new_session()
    api.sim.set_fault("token_expired", session_id=a)
    assert (await api.credits()).status_code == 200
    assert (await api.state(b)).status_code == 200
    r = await api.chat_raw(a, "hello")
    assert r.status_code == 401 and r.json()["code"] == 1001
    assert api.sim.faults.active() == []


async def test_session_lost(api: Api) -> None:
    sid = await api.new_session()
    await api.chat(sid, "generate a city timelapse")
    api.sim.set_fault("session_lost", session_id=sid)
    assert (await api.credits()).status_code == 200  # not a session call: untouched
    r = await api.state(sid)
    assert r.status_code == 404
    assert r.json() == {"code": 1002, "message": f"session not found: {sid}", "data": None}
    assert (await api.chat_raw(sid, "hello")).json()["code"] == 1002
    fresh = await api.new_session()
    assert (await api.state(fresh)).status_code == 200


async def test_no_credits(api: Api) -> None:
    sid = await api.new_session()
    await api.chat(sid, "generate a city timelapse")
    draft = await api.draft(sid)
    api.sim.set_fault("no_credits")
    assert (await api.credits()).json()["data"] == {"available": 0, "frozen": 0, "total": 0}
    r = await api.chat_raw(sid, "hello")
    assert r.status_code == 403
    body = r.json()
    assert body["code"] == 2001 and body["message"] == "insufficient credits"
    assert body["data"]["available"] == 0 and body["data"]["anonymous"] is True
    assert body["data"]["register_url"].endswith(f"?bind={body['data']['user_id']}")
    r = await api.start_render(sid, draft, "render_nc")
    assert r.status_code == 403
    assert r.json()["success"] is False and r.json()["code"] == 2001
    api.sim.clear_faults()
    assert (await api.credits()).json()["data"]["available"] == 90
    assert (await api.chat(sid, "hello")).status == 200


async def test_rate_limit_once(api: Api) -> None:
    api.sim.set_fault("rate_limit_once", retry_after=2)
    r = await api.credits()
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json() == {"code": 429, "message": "too many requests", "data": None}
    assert (await api.credits()).status_code == 200


async def test_rate_limit_on_one_path_with_render_envelope(api: Api) -> None:
    api.sim.set_fault("rate_limit_once", path="/api/render/")
    assert (await api.credits()).status_code == 200
    r = await api.render_status("render_x")
    assert r.status_code == 429
    assert r.json() == {"success": False, "data": None, "error": "rate limited"}
    assert (await api.render_status("render_x")).status_code == 404


async def test_server_error_n_times(api: Api) -> None:
    api.sim.set_fault("server_error", times=2, status=502)
    for _ in range(2):
        r = await api.credits()
        assert r.status_code == 502
        assert r.text == "502 simulated upstream failure"
    assert (await api.credits()).status_code == 200


async def test_slow_answers(api: Api) -> None:
    sid = await api.new_session()
    other = await api.new_session()
    api.sim.set_fault("slow", session_id=sid, seconds=0.4)
    start = time.monotonic()
    assert (await api.state(other)).status_code == 200
    assert time.monotonic() - start < 0.3
    for _ in range(2):  # every answer, until cleared
        start = time.monotonic()
        assert (await api.state(sid)).status_code == 200
        assert time.monotonic() - start >= 0.4


async def test_export_blocked(api: Api) -> None:
    sid = await api.new_session()
    await api.chat(sid, "generate a city timelapse")
    api.sim.set_fault("export_blocked")
    r = await api.start_render(sid, await api.draft(sid), "render_b")
    assert r.status_code == 402
    assert r.json() == {
        "success": False,
        "data": None,
        "error": "export is not available on this plan",
    }


# ---- stream faults ---------------------------------------------------------------------------
async def test_stream_cut_drops_the_connection_but_the_edit_lands(api: Api) -> None:
    sid = await api.new_session()
    api.sim.set_fault("stream_cut", session_id=sid, after=3)
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with api.chat_stream(sid, "add a title 'Cut'") as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                lines.append(line)
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert len(events) == 3 and not any(e.get("turnComplete") for e in events)
    draft = await api.draft(sid)
    assert draft["t"][0]["m"] == {"title": "Cut"}
    after = await api.chat(sid, "hello")  # fired once
    assert after.adk[-1]["turnComplete"] is True


async def test_stream_cut_clean_eof(api: Api) -> None:
    sid = await api.new_session()
    api.sim.set_fault("stream_cut", after=1, mode="eof")
    s = await api.chat(sid, "hello")
    assert s.status == 200 and len(s.adk) == 1
    assert s.adk[0]["partial"] is True and "turnComplete" not in s.adk[0]


async def test_malformed_events(api: Api) -> None:
    sid = await api.new_session()
    api.sim.set_fault("malformed_events")
    s = await api.chat(sid, 'add a title "Messy"')
    assert s.garbage[:3] == [
        'data: {"content":{"parts":[{"text":"unterminated',
        "data: not json at all",
        "retry: soon",
    ]
    assert [e for e in s.events if not isinstance(e, dict) or "invocationId" not in e][:4] == [
        [1, 2, 3],
        "just a string",
        {"type": "mystery", "payload": {"x": 1}},
        None,
    ]
    assert s.adk[-1]["turnComplete"] is True
    assert s.texts(partial=False)[-1] == 'Done! Added the title "Messy" (0-3s).'
    again = await api.chat(sid, "hello")  # persistent until cleared
    assert again.garbage


async def test_quiet_stream(api: Api) -> None:
    sid = await api.new_session()
    api.sim.set_fault("quiet_stream", seconds=0.5, every=0.1)
    start = time.monotonic()
    first_event_at = None
    blocks: list[str] = []
    async with api.chat_stream(sid, "hello") as r:
        async for line in r.aiter_lines():
            if line:
                blocks.append(line)
            if first_event_at is None and "invocationId" in line:
                first_event_at = time.monotonic() - start
    assert first_event_at is not None and first_event_at >= 0.5
    assert blocks[:4] == ['data: {"type":"heartbeat"}', "data: ", ": keep-alive", blocks[3]]
    assert blocks[3] == 'data: {"type":"heartbeat"}'
    assert json.loads(blocks[-1][6:])["turnComplete"] is True


@pytest.mark.parametrize(
    ("style", "last"),
    [
        ("plain", 'data: {"error": "RuntimeError: simulated agent crash"}'),
        ("broken", 'data: {"error": "RuntimeError: simulated agent crash'),
    ],
)
async def test_agent_crash_styles(api: Api, style: str, last: str) -> None:
    sid = await api.new_session()
    api.sim.set_fault("agent_crash", style=style, after=1)
    r = await api.chat_raw(sid, "hello")
    assert r.status_code == 200
    blocks = [b for b in r.text.split("\n\n") if b]
    assert len(blocks) == 2 and blocks[-1] == last


async def test_agent_crash_with_details(api: Api) -> None:
    sid = await api.new_session()
    api.sim.set_fault("agent_crash", session_id=sid, after=0, message="boom")
    r = await api.chat_raw(sid, "generate a city timelapse")
    assert r.status_code == 200
    (block,) = [b for b in r.text.split("\n\n") if b]
    assert block.startswith('data: {"error": "RuntimeError: boom", "error_details": {')
    crash = json.loads(block[6:])
    assert crash["error_details"]["error_type"] == "RuntimeError"
    assert crash["error_details"]["error_message"] == "boom"
    assert isinstance(crash["error_details"]["timestamp"], float)


async def test_model_error_event(api: Api) -> None:
    sid = await api.new_session()
    api.sim.set_fault("model_error", code="SAFETY", message="blocked")
    s = await api.chat(sid, "hello")
    (event,) = s.adk
    assert list(event)[:2] == ["errorCode", "errorMessage"]
    assert (event["errorCode"], event["errorMessage"]) == ("SAFETY", "blocked")
    assert "content" not in event and "turnComplete" not in event


async def test_stream_faults_scoped_to_one_session(api: Api) -> None:
    a = await api.new_session()
    b = await api.new_session()
    api.sim.set_fault("agent_crash", session_id=a)
    ok = await api.chat(b, "hello")
    assert ok.adk[-1]["turnComplete"] is True
    crashed = await api.chat_raw(a, "hello")
    assert '"error": "RuntimeError: simulated agent crash"' in crashed.text


# ---- render faults ---------------------------------------------------------------------------
async def _draft(api: Api) -> tuple[str, dict[str, object]]:
    sid = await api.new_session()
    await api.chat(sid, "generate a city timelapse")
    return sid, await api.draft(sid)


async def test_render_fail(api: Api) -> None:
    sid, draft = await _draft(api)
    api.sim.set_fault("render_fail", at=0.5, message="codec exploded")
    await api.start_render(sid, draft, "render_f1")
    await asyncio.sleep(0.4)
    body = (await api.render_status("render_f1")).json()
    assert body["success"] is True
    data = body["data"]
    assert (data["status"], data["progress"], data["error"], data["outputUrl"]) == (
        "failed",
        50.0,
        "codec exploded",
        None,
    )
    assert (await api.http.get("/renders/render_f1.mp4")).status_code == 404
    await api.start_render(sid, draft, "render_f2")  # fired once
    await asyncio.sleep(0.4)
    assert (await api.render_status("render_f2")).json()["data"]["status"] == "completed"


async def test_render_never_finishes(api: Api) -> None:
    sid, draft = await _draft(api)
    api.sim.set_fault("render_never_finishes", session_id=sid, progress=80)
    await api.start_render(sid, draft, "render_n1")
    await asyncio.sleep(0.7)
    data = (await api.render_status("render_n1")).json()["data"]
    assert (data["status"], data["progress"]) == ("processing", 80.0)
    r = await api.http.post("/api/render/proxy/lambda/render_n1/cancel", headers=api.headers())
    assert r.json()["data"]["status"] == "cancelled"


async def test_parse_stream_helper_on_a_plain_turn(api: Api) -> None:
    sid = await api.new_session()
    r = await api.chat_raw(sid, "hello")
    s = parse_stream(r.status_code, r.headers["content-type"], r.content)
    assert s.garbage == [] and s.keepalives == []
    assert "".join(s.texts(partial=True)) == s.texts(partial=False)[0]
