"""The client over real HTTP against scripted aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiohttp import web

from backend import (
    VERSION,
    AgentCrash,
    BackendUnavailable,
    ChatEvent,
    ClientConfig,
    Credentials,
    ExportBlocked,
    FileTooLarge,
    KeepAlive,
    MissingClientId,
    ModelError,
    NemoClient,
    NemoError,
    OutOfCredits,
    ProtocolError,
    RateLimited,
    RenderFailed,
    RenderStatus,
    SessionNotFound,
    StreamBroken,
    StreamTimeout,
    TextDelta,
    TokenExpired,
    ToolCall,
    TurnComplete,
    UnsupportedFile,
    UploadFile,
    UploadLimits,
    build_client,
)
from tests.backend_fixtures import Scripted, anon, capture_streams, make_client, reply, sse
from tests.backend_fixtures import scripted as scripted  # the fixture

SECRET = "nmv_usr_secretTOKEN1234"
STATE_PATH = "/api/state/nemo_agent/me/42/latest"
RENDER = "/api/render/proxy/lambda"


async def collect(events: object) -> list[ChatEvent]:
    return [event async for event in events]  # type: ignore[attr-defined]


# --- credentials ----------------------------------------------------------------------------


async def test_anonymous_token_sends_client_id_and_attribution(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/api/auth/anonymous-token",
        reply(
            {
                "token": SECRET,
                "user_id": "anon_1",
                "expires_at": "2026-03-18T00:00:00Z",
                "credits": 100,
            }
        ),
    )
    client = make_client(scripted.base_url, platform="terminal", user_agent="nemobot-test/1")
    try:
        creds = await client.credentials("cid-9")
    finally:
        await client.aclose()
    assert creds.token == SECRET and creds.anonymous and creds.client_id == "cid-9"
    assert creds.user_id == "anon_1"
    assert creds.expires_at == datetime(2026, 3, 18, tzinfo=UTC)
    seen = scripted.calls("/api/auth/anonymous-token")[0]
    assert seen.headers["X-Client-Id"] == "cid-9"
    assert seen.headers["X-Skill-Source"] == "nemobot"
    assert seen.headers["X-Skill-Version"] == VERSION
    assert seen.headers["X-Skill-Platform"] == "terminal"
    assert seen.headers["User-Agent"] == "nemobot-test/1"
    assert "Authorization" not in seen.headers
    assert SECRET not in repr(creds) and SECRET not in str(creds)


async def test_operator_token_is_used_without_a_call(scripted: Scripted) -> None:
    client = make_client(scripted.base_url, operator_token="nmv_op_operatorsecret")
    try:
        creds = await client.credentials("cid")
        assert not creds.anonymous and creds.token == "nmv_op_operatorsecret"
        assert scripted.seen == []
        assert "operatorsecret" not in repr(client.config)
    finally:
        await client.aclose()


async def test_missing_client_id(scripted: Scripted) -> None:
    scripted.on("POST", "/api/auth/anonymous-token", reply(body=None, status=400))
    client = make_client(scripted.base_url)
    try:
        with pytest.raises(MissingClientId):
            await client.anonymous_token("")
        assert scripted.seen == []  # refused before sending
        with pytest.raises(MissingClientId) as info:
            await client.anonymous_token("cid")
        assert info.value.status == 400
    finally:
        await client.aclose()


def test_credentials_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    creds = Credentials("t", "c", now + timedelta(seconds=30), True)
    assert creds.expired(now) and not creds.expired(now, margin_s=10)
    assert not Credentials("t", "c", None, False).expired(now)


# --- endpoints ------------------------------------------------------------------------------


async def test_every_endpoint_sends_bearer_and_attribution(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/api/tasks/me/with-session/nemo_agent",
        reply({"task_id": "task_1", "session_id": 5529798706024415232, "user_id": "anon_1"}),
    )
    scripted.on(
        "GET",
        "/api/credits/balance/simple",
        reply({"available": 25000, "frozen": 40, "total": 25040}),
    )
    draft = {"t": [{"tt": 0, "sg": [{"d": 10000}]}]}
    scripted.on(
        "GET",
        "/api/state/nemo_agent/me/5529798706024415232/latest",
        reply({"session_id": "5529798706024415232", "state": {"draft": draft}}),
    )
    scripted.on(
        "POST",
        RENDER,
        reply(body={"success": True, "data": {"id": "r1", "status": "pending", "progress": 0}}),
    )
    scripted.on(
        "GET",
        f"{RENDER}/r1",
        reply(
            body={
                "success": True,
                "data": {"id": "r1", "status": "completed", "outputUrl": "http://x/v.mp4"},
            }
        ),
    )
    scripted.on("POST", f"{RENDER}/r1/cancel", reply(body=None))
    scripted.on(
        "POST",
        "/api/auth/claim-token",
        reply({"claim_token": "clm_abc123456", "expires_in": 604800}),
    )
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    try:
        session = await api.create_session("zh")
        assert session.session_id == "5529798706024415232" and session.task_id == "task_1"
        credits = await api.credits()
        assert (credits.available, credits.frozen, credits.total) == (25000, 40, 25040)
        state = await api.state(session.session_id)
        assert state.draft == draft and state.raw["session_id"] == session.session_id
        job = await api.start_export(session.session_id, state.draft, quality="medium")
        assert job.id == "r1" and job.status is RenderStatus.PENDING
        done = await api.export_status("r1")
        assert done.status is RenderStatus.COMPLETED and done.url == "http://x/v.mp4"
        assert done.progress == 100
        await api.cancel_export("r1")
        link = await api.claim_link("task_1", session.session_id)
        assert link == "https://nemovideo.com/workspace/claim?ct=clm_abc123456"
    finally:
        await client.aclose()
    for seen in scripted.seen:
        assert seen.headers["Authorization"] == f"Bearer {SECRET}", seen.path
        for header in ("X-Skill-Source", "X-Skill-Version", "X-Skill-Platform"):
            assert seen.headers[header], (seen.path, header)
    session_body = json.loads(scripted.seen[0].body)
    assert session_body == {"task_name": "project", "language": "zh"}
    export_body = json.loads(scripted.calls(RENDER)[0].body)
    assert export_body["sessionId"] == "5529798706024415232"
    assert export_body["id"].startswith("render_")
    assert export_body["draft"] == draft
    assert export_body["output"] == {"format": "mp4", "quality": "medium"}
    assert json.loads(scripted.calls("/api/auth/claim-token")[0].body) == {
        "task_id": "task_1",
        "session_id": "5529798706024415232",
    }


@pytest.mark.parametrize(
    ("answer", "status", "progress", "url", "error"),
    [
        (
            {"success": True, "data": {"id": "r", "status": "processing", "progress": 40}},
            RenderStatus.PROCESSING,
            40.0,
            None,
            None,
        ),
        (
            {
                "taskId": "r",
                "status": "completed",
                "progress": 100,
                "output": {"url": "http://cdn/b.mp4", "duration": 10, "size": 1000},
            },
            RenderStatus.COMPLETED,
            100.0,
            "http://cdn/b.mp4",
            None,
        ),
        (
            {"status": "processing", "progress": 0.5, "output": {"url": None}},
            RenderStatus.PROCESSING,
            50.0,
            None,
            None,
        ),
        (
            {"success": True, "data": {"id": "r", "status": "failed", "error": "codec"}},
            RenderStatus.FAILED,
            0.0,
            None,
            "codec",
        ),
        ({"status": "canceled"}, RenderStatus.CANCELLED, 0.0, None, None),
        (
            {"code": 0, "data": {"id": "r", "status": "done", "outputUrl": "http://c/d.mp4"}},
            RenderStatus.COMPLETED,
            100.0,
            "http://c/d.mp4",
            None,
        ),
    ],
)
async def test_render_answer_shapes(
    scripted: Scripted,
    answer: dict[str, object],
    status: RenderStatus,
    progress: float,
    url: str | None,
    error: str | None,
) -> None:
    scripted.on("GET", f"{RENDER}/r", reply(body=answer))
    client = make_client(scripted.base_url)
    try:
        job = await client.bind(anon()).export_status("r")
    finally:
        await client.aclose()
    assert (job.id, job.status, job.progress, job.url, job.error) == (
        "r",
        status,
        progress,
        url,
        error,
    )


async def test_export_refused_by_the_render_envelope(scripted: Scripted) -> None:
    scripted.on("POST", RENDER, reply(body={"success": False, "error": "duplicate id"}))
    client = make_client(scripted.base_url)
    try:
        with pytest.raises(RenderFailed) as info:
            await client.bind(anon()).start_export("42", {"t": []})
    finally:
        await client.aclose()
    assert info.value.message == "duplicate id"


# --- error mapping over HTTP ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        (200, {"code": 1002, "message": "session not found", "data": None}, SessionNotFound, 1002),
        (404, {"code": 1002, "message": "session not found"}, SessionNotFound, 1002),
        (403, {"code": 2001, "message": "no credits"}, OutOfCredits, 2001),
        (200, {"code": 4001, "message": "bad type"}, UnsupportedFile, 4001),
        (413, {"code": 4002, "message": "too big"}, FileTooLarge, 4002),
        (402, None, ExportBlocked, None),
        (402, {"code": 402, "message": "upgrade your plan"}, ExportBlocked, 402),
        (500, None, BackendUnavailable, None),
        (503, {"code": 5000, "message": "maintenance"}, BackendUnavailable, 5000),
        (404, {"detail": "Session not found"}, SessionNotFound, None),
        (418, None, NemoError, None),
        (200, {"code": 7777, "message": "odd"}, NemoError, 7777),
        (200, {"success": False, "error": "nope"}, NemoError, None),
    ],
)
async def test_error_codes_map_to_typed_errors(
    scripted: Scripted,
    status: int,
    body: dict[str, object] | None,
    expected: type[NemoError],
    code: int | None,
) -> None:
    scripted.on("GET", STATE_PATH, reply(body=body, status=status))
    client = make_client(scripted.base_url, operator_token=SECRET)
    api = client.bind(await client.credentials("x"))
    try:
        with pytest.raises(expected) as info:
            await api.state("42")
    finally:
        await client.aclose()
    assert type(info.value) is expected
    assert info.value.status == status and info.value.code == code
    assert len(scripted.seen) == 1


async def test_out_of_credits_carries_the_registration_link(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/api/tasks/me/with-session/nemo_agent",
        reply({"task_id": "t", "session_id": "42", "user_id": "anon_77"}),
    )
    scripted.on("GET", "/api/credits/balance/simple", reply(body={"code": 2001, "message": "x"}))
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    try:
        await api.create_session("en")
        with pytest.raises(OutOfCredits) as info:
            await api.credits()
        assert info.value.anonymous
        assert info.value.link == "https://nemovideo.com/register?bind=anon_77"
        scripted.on(
            "GET",
            "/api/credits/balance/simple",
            reply(body={"code": 2001, "message": "x", "data": {"register_url": "https://r/x"}}),
        )
        with pytest.raises(OutOfCredits) as info2:
            await api.credits()
        assert info2.value.link == "https://r/x"
        registered = client.bind(Credentials(SECRET, None, None, anonymous=False))
        with pytest.raises(OutOfCredits) as info3:
            await registered.credits()
        assert not info3.value.anonymous
    finally:
        await client.aclose()


async def test_unparseable_answers_are_protocol_errors(scripted: Scripted) -> None:
    scripted.on("GET", STATE_PATH, reply(raw=b"<html>gateway</html>", content_type="text/html"))
    scripted.on("GET", "/api/credits/balance/simple", reply({"nothing": 1}))
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    try:
        with pytest.raises(ProtocolError):
            await api.state("42")
        with pytest.raises(ProtocolError):
            await api.credits()
    finally:
        await client.aclose()


async def test_network_failure_is_backend_unavailable() -> None:
    client = make_client("http://127.0.0.1:9")
    try:
        with pytest.raises(BackendUnavailable):
            await client.bind(anon()).credits()
        with pytest.raises(BackendUnavailable) as info:
            await collect(client.bind(anon()).chat("42", "hi"))
        assert not isinstance(info.value, StreamBroken)  # never reached the agent
    finally:
        await client.aclose()


async def test_slow_answer_times_out(scripted: Scripted) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.json_response({"code": 0, "data": {"available": 1}})

    scripted.on("GET", "/api/credits/balance/simple", slow)
    client = make_client(scripted.base_url, request_timeout=0.2)
    try:
        with pytest.raises(BackendUnavailable, match="timed out"):
            await client.bind(anon()).credits()
    finally:
        await client.aclose()


# --- recovery ---------------------------------------------------------------------------------


async def test_429_waits_then_retries_once(scripted: Scripted) -> None:
    limited = reply(body={"code": 429, "message": "slow down"}, status=429)
    ok = reply({"available": 5, "frozen": 0, "total": 5})
    scripted.on("GET", "/api/credits/balance/simple", limited, ok)
    client = make_client(scripted.base_url, rate_limit_wait=0.3)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        credits = await client.bind(anon()).credits()
        assert loop.time() - started >= 0.3
        assert credits.available == 5
        assert len(scripted.seen) == 2
        scripted.on("GET", "/api/credits/balance/simple", limited)
        with pytest.raises(RateLimited):
            await client.bind(anon()).credits()
        assert len(scripted.seen) == 4  # one retry, no more
    finally:
        await client.aclose()


async def test_429_retry_of_export_uses_a_new_render_id(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        RENDER,
        reply(body=None, status=429, headers={"Retry-After": "1"}),
        reply(body={"success": True, "data": {"status": "pending"}}),
    )
    client = make_client(scripted.base_url)
    try:
        job = await client.bind(anon()).start_export("42", {"t": []})
    finally:
        await client.aclose()
    ids = [json.loads(s.body)["id"] for s in scripted.calls(RENDER)]
    assert len(ids) == 2 and ids[0] != ids[1] and job.id == ids[1]


@pytest.mark.parametrize(
    "expired",
    [
        reply(body={"code": 1001, "message": "token expired"}),
        reply(body={"code": 1010, "message": "invalid"}, status=401),
        reply(body={"code": 1011, "message": "invalid"}),
        reply(body=None, status=401),
    ],
)
async def test_token_expiry_renews_once_and_reports(scripted: Scripted, expired: object) -> None:
    scripted.on(
        "POST",
        "/api/auth/anonymous-token",
        reply({"token": "nmv_usr_newTOKEN5678", "user_id": "anon_2", "expires_at": None}),
    )
    ok = reply({"available": 100, "frozen": 0, "total": 100})
    scripted.on("GET", "/api/credits/balance/simple", expired, ok)  # type: ignore[arg-type]
    renewed: list[Credentials] = []

    async def on_renew(creds: Credentials) -> None:
        renewed.append(creds)

    client = make_client(scripted.base_url)
    api = client.bind(anon(), on_renew)
    try:
        assert (await api.credits()).available == 100
    finally:
        await client.aclose()
    assert [c.token for c in renewed] == ["nmv_usr_newTOKEN5678"]
    assert api.creds.token == "nmv_usr_newTOKEN5678"
    assert renewed[0].client_id == "cid-1"
    assert renewed[0].expires_at is not None  # defaulted to seven days
    auths = [s.headers.get("Authorization") for s in scripted.seen]
    assert auths == [f"Bearer {SECRET}", None, "Bearer nmv_usr_newTOKEN5678"]
    assert scripted.calls("/api/auth/anonymous-token")[0].headers["X-Client-Id"] == "cid-1"


async def test_token_expiry_twice_gives_up(scripted: Scripted) -> None:
    scripted.on("POST", "/api/auth/anonymous-token", reply({"token": "nmv_usr_again12345"}))
    scripted.on("GET", "/api/credits/balance/simple", reply(body={"code": 1001}))
    client = make_client(scripted.base_url)
    try:
        with pytest.raises(TokenExpired):
            await client.bind(anon()).credits()
    finally:
        await client.aclose()
    assert len(scripted.calls("/api/credits/balance/simple")) == 2


async def test_operator_token_expiry_is_reported_not_renewed(scripted: Scripted) -> None:
    scripted.on("GET", "/api/credits/balance/simple", reply(body=None, status=401))
    client = make_client(scripted.base_url, operator_token=SECRET)
    try:
        api = client.bind(await client.credentials("x"))
        with pytest.raises(TokenExpired):
            await api.credits()
    finally:
        await client.aclose()
    assert scripted.calls("/api/auth/anonymous-token") == []


async def test_known_expired_token_is_renewed_before_the_call(scripted: Scripted) -> None:
    scripted.on("POST", "/api/auth/anonymous-token", reply({"token": "nmv_usr_fresh123456"}))
    scripted.on("GET", "/api/credits/balance/simple", reply({"available": 1}))
    old = Credentials(SECRET, "cid", datetime.now(UTC) - timedelta(hours=1), anonymous=True)
    client = make_client(scripted.base_url)
    try:
        credits = await client.bind(old).credits()
    finally:
        await client.aclose()
    assert credits == type(credits)(1, 0, 1)
    assert scripted.seen[-1].headers["Authorization"] == "Bearer nmv_usr_fresh123456"
    assert len(scripted.seen) == 2


async def test_concurrent_expiry_renews_only_once(scripted: Scripted) -> None:
    async def check(request: web.Request) -> web.StreamResponse:
        if request.headers["Authorization"] == f"Bearer {SECRET}":
            await asyncio.sleep(0.05)
            return web.json_response({"code": 1001, "message": "expired"})
        return web.json_response({"code": 0, "data": {"available": 3}})

    scripted.on("GET", "/api/credits/balance/simple", check)
    scripted.on("POST", "/api/auth/anonymous-token", reply({"token": "nmv_usr_shared12345"}))
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    try:
        results = await asyncio.gather(*(api.credits() for _ in range(5)))
    finally:
        await client.aclose()
    assert all(r.available == 3 for r in results)
    assert len(scripted.calls("/api/auth/anonymous-token")) == 1


async def test_failing_on_renew_does_not_fail_the_call(scripted: Scripted) -> None:
    scripted.on("POST", "/api/auth/anonymous-token", reply({"token": "nmv_usr_x123456789"}))
    scripted.on(
        "GET",
        "/api/credits/balance/simple",
        reply(body={"code": 1001}),
        reply({"available": 2}),
    )

    async def broken(creds: Credentials) -> None:
        raise RuntimeError("store down")

    client = make_client(scripted.base_url)
    try:
        assert (await client.bind(anon(), broken).credits()).available == 2
    finally:
        await client.aclose()


# --- uploads ---------------------------------------------------------------------------------


async def test_upload_several_files_multipart(scripted: Scripted) -> None:
    files = [
        {"filename": "a.jpg", "file_type": "image", "cdn_url": "http://cdn/a.jpg", "width": 4},
        {"filename": "b.mp4", "file_type": "video", "cdn_url": "http://cdn/b", "duration": 1.5},
    ]
    scripted.on(
        "POST",
        "/api/upload-video/nemo_agent/me/42",
        reply({"files": files, "session_state_applied": True}),
    )
    client = make_client(scripted.base_url)
    video = io.BytesIO(b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000)
    try:
        uploaded = await client.bind(anon()).upload_files(
            "42",
            [
                UploadFile("a.jpg", "image/jpeg", b"\xff\xd8jpegbytes", 11),
                UploadFile("b.mp4", "video/mp4", video, 5012),
            ],
        )
    finally:
        await client.aclose()
    assert [u.filename for u in uploaded] == ["a.jpg", "b.mp4"]
    assert uploaded[0].width == 4 and uploaded[1].duration == 1.5
    seen = scripted.calls("/api/upload-video/nemo_agent/me/42")[0]
    assert seen.headers["Content-Type"].startswith("multipart/form-data")
    assert seen.body.count(b'name="files"') == 2
    assert b'filename="b.mp4"' in seen.body and b"v" * 5000 in seen.body
    assert b"jpegbytes" in seen.body


async def test_upload_retry_after_429_resends_file_objects_whole(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/api/upload-video/nemo_agent/me/42",
        reply(body=None, status=429),
        reply({"files": [{"filename": "c.mp3", "file_type": "audio", "cdn_url": "u"}]}),
    )
    client = make_client(scripted.base_url)
    try:
        up = await client.bind(anon()).upload_files(
            "42", [UploadFile("c.mp3", "audio/mpeg", io.BytesIO(b"ID3" + b"a" * 999), 1002)]
        )
    finally:
        await client.aclose()
    assert up[0].file_type == "audio"
    bodies = [s.body for s in scripted.calls("/api/upload-video/nemo_agent/me/42")]
    assert len(bodies) == 2 and all(b"ID3" + b"a" * 999 in body for body in bodies)


async def test_preflight_refuses_before_any_byte(scripted: Scripted) -> None:
    client = make_client(scripted.base_url, limits=UploadLimits(image_bytes=10))
    api = client.bind(anon())
    try:
        with pytest.raises(UnsupportedFile) as bad:
            await api.upload_files("42", [UploadFile("doc.pdf", "application/pdf", b"%PDF", 4)])
        assert "mp4" in bad.value.accepted
        with pytest.raises(FileTooLarge) as big:
            await api.upload_files(
                "42",
                [
                    UploadFile("ok.mp3", "audio/mpeg", b"x", 1),
                    UploadFile("big.png", "image/png", b"x" * 11, 11),
                ],
            )
        assert (big.value.size, big.value.limit) == (11, 10)
    finally:
        await client.aclose()
    assert scripted.seen == []


async def test_upload_urls(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/api/upload-video/nemo_agent/me/42",
        reply({"files": [{"filename": "x.mp4", "file_type": "video", "cdn_url": "http://c/x"}]}),
    )
    client = make_client(scripted.base_url)
    try:
        up = await client.bind(anon()).upload_urls("42", ["https://example.com/x.mp4"])
    finally:
        await client.aclose()
    assert up[0].cdn_url == "http://c/x"
    assert json.loads(scripted.seen[0].body) == {
        "urls": ["https://example.com/x.mp4"],
        "source_type": "url",
    }


# --- chat -------------------------------------------------------------------------------------


async def test_chat_reads_the_captured_stream(scripted: Scripted) -> None:
    body = capture_streams()["add title"]
    scripted.on("POST", "/run_sse", sse(body[:100], 0.01, body[100:700], 0.01, body[700:]))
    client = make_client(scripted.base_url)
    try:
        events = await collect(client.bind(anon()).chat("42", "add title"))
    finally:
        await client.aclose()
    assert [type(e).__name__ for e in events] == [
        "TextDelta",
        "ToolCall",
        "ToolResult",
        "StateDelta",
        "TextDelta",
        "TurnComplete",
    ]
    seen = scripted.calls("/run_sse")[0]
    assert seen.headers["Accept"] == "text/event-stream"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(seen.body) == {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": "42",
        "new_message": {"role": "user", "parts": [{"text": "add title"}]},
    }


async def test_chat_crlf_stream_over_http(scripted: Scripted) -> None:
    body = capture_streams()["add title"].replace(b"\n", b"\r\n")
    pieces: list[bytes | float] = []
    for i in range(0, len(body), 97):
        pieces += [body[i : i + 97], 0.001]
    scripted.on("POST", "/run_sse", sse(*pieces))
    client = make_client(scripted.base_url)
    try:
        events = await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert TextDelta("Done: add title") in events and events[-1] == TurnComplete()


async def test_chat_model_error_and_crash_from_capture(scripted: Scripted) -> None:
    streams = capture_streams()
    scripted.on("POST", "/run_sse", sse(streams["llmerr"]), sse(streams["boom"]))
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    try:
        first = await collect(api.chat("42", "llmerr"))
        second = await collect(api.chat("42", "boom"))
    finally:
        await client.aclose()
    assert first == [ModelError("MALFORMED_FUNCTION_CALL", "bad call"), TurnComplete()]
    assert second == [AgentCrash("RuntimeError: scripted failure")]


async def test_chat_closing_without_turn_complete_still_ends_the_turn(scripted: Scripted) -> None:
    scripted.on("POST", "/run_sse", sse(b'data: {"content":{"parts":[{"text":"ok"}]}}\n\n'))
    client = make_client(scripted.base_url)
    try:
        events = await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert events == [TextDelta("ok"), TurnComplete()]


async def test_chat_malformed_lines_are_skipped(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/run_sse",
        sse(
            b"data: {garbage\n\n",
            b'data: {"type":"unknown_kind"}\n\n',
            b'data: {"content":{"parts":[{"text":"fine"}]},"turnComplete":true}\n\n',
        ),
    )
    client = make_client(scripted.base_url)
    try:
        events = await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert events == [TextDelta("fine"), TurnComplete()]


async def test_chat_stream_cut_midway_is_stream_broken_and_not_resent(scripted: Scripted) -> None:
    body = capture_streams()["add title"]
    scripted.on("POST", "/run_sse", sse(body[:450], 0.05, body[450:900], cut=True))
    client = make_client(scripted.base_url)
    got: list[ChatEvent] = []
    try:
        with pytest.raises(StreamBroken):
            async for event in client.bind(anon()).chat("42", "add title"):
                got.append(event)
    finally:
        await client.aclose()
    assert got[:2] == [
        TextDelta("Working on "),
        ToolCall("edit_multitrack", {"op": "add_title", "text": "add title"}),
    ]
    assert len(scripted.calls("/run_sse")) == 1


async def test_chat_keepalives_keep_a_quiet_stream_alive(scripted: Scripted) -> None:
    pieces: list[bytes | float] = []
    for style in (b": ping\n\n", b"data:\n\n", b'data: {"type":"heartbeat"}\n\n') * 3:
        pieces += [0.15, style]
    pieces.append(b'data: {"content":{"parts":[{"text":"done"}]},"turnComplete":true}\n\n')
    scripted.on("POST", "/run_sse", sse(*pieces))
    client = make_client(scripted.base_url, chat_read_timeout=0.5)
    try:
        events = await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert events.count(KeepAlive()) == 9
    assert events[-2:] == [TextDelta("done"), TurnComplete()]


async def test_chat_silence_beyond_the_read_timeout_breaks(scripted: Scripted) -> None:
    scripted.on("POST", "/run_sse", sse(b": ping\n\n", 1.0, b"data: {}\n\n"))
    client = make_client(scripted.base_url, chat_read_timeout=0.3)
    try:
        with pytest.raises(StreamBroken, match="nothing received"):
            await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()


async def test_chat_total_timeout_even_with_keepalives(scripted: Scripted) -> None:
    scripted.on("POST", "/run_sse", sse(*([b": ping\n\n", 0.05] * 40)))
    client = make_client(scripted.base_url, chat_timeout=0.4, chat_read_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(StreamTimeout):
            await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert 0.35 < loop.time() - started < 1.5
    assert len(scripted.calls("/run_sse")) == 1


async def test_chat_429_is_sent_again_once_after_retry_after(scripted: Scripted) -> None:
    body = capture_streams()["add title"]
    scripted.on(
        "POST",
        "/run_sse",
        reply(body=None, status=429, headers={"Retry-After": "0.4"}),
        sse(body),
    )
    client = make_client(scripted.base_url, rate_limit_wait=30)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        events = await collect(client.bind(anon()).chat("42", "add title"))
        waited = loop.time() - started
    finally:
        await client.aclose()
    assert events[-1] == TurnComplete() and TextDelta("Done: add title") in events
    sent = scripted.calls("/run_sse")
    assert len(sent) == 2 and sent[0].body == sent[1].body
    assert waited >= 0.4  # what the server asked for, not the 30 s fallback


async def test_chat_429_twice_is_reported_with_the_wait(scripted: Scripted) -> None:
    scripted.on("POST", "/run_sse", reply(body=None, status=429, headers={"Retry-After": "0"}))
    client = make_client(scripted.base_url)
    try:
        with pytest.raises(RateLimited) as info:
            await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert info.value.retry_after == 0
    assert len(scripted.calls("/run_sse")) == 2  # one retry, no more


async def test_chat_429_asking_too_long_a_wait_is_reported_at_once(scripted: Scripted) -> None:
    scripted.on("POST", "/run_sse", reply(body=None, status=429, headers={"Retry-After": "7"}))
    client = make_client(scripted.base_url, max_retry_after=5)
    try:
        with pytest.raises(RateLimited) as info:
            await collect(client.bind(anon()).chat("42", "x"))
    finally:
        await client.aclose()
    assert info.value.retry_after == 7
    assert len(scripted.calls("/run_sse")) == 1


async def test_retry_after_as_an_http_date(scripted: Scripted) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    scripted.on(
        "GET",
        "/api/credits/balance/simple",
        reply(body=None, status=429, headers={"Retry-After": date}),
    )
    client = make_client(scripted.base_url, max_retry_after=10)
    try:
        with pytest.raises(RateLimited) as info:
            await client.bind(anon()).credits()
    finally:
        await client.aclose()
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 30
    assert len(scripted.calls("/api/credits/balance/simple")) == 1  # 30 s is over the cap


async def test_429_without_retry_after_waits_the_configured_time(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.on(
        "GET",
        "/api/credits/balance/simple",
        reply(body=None, status=429),
        reply({"available": 5, "frozen": 0, "total": 5}),
    )
    client = make_client(scripted.base_url, rate_limit_wait=0.2)
    try:
        with caplog.at_level(logging.INFO, logger="backend"):
            assert (await client.bind(anon()).credits()).available == 5
    finally:
        await client.aclose()
    waits = [r.__dict__.get("wait_s") for r in caplog.records if "rate limited" in r.message]
    assert waits == [0.2]


async def test_anonymous_token_429_waits_what_the_server_asks(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.on(
        "POST",
        "/api/auth/anonymous-token",
        reply(body=None, status=429, headers={"Retry-After": "0.3"}),
        reply({"token": "nmv_usr_fresh00001234", "expires_at": None}),
    )
    client = make_client(scripted.base_url, rate_limit_wait=30)
    try:
        with caplog.at_level(logging.INFO, logger="backend"):
            creds = await client.anonymous_token("cid-1")
    finally:
        await client.aclose()
    assert creds.token == "nmv_usr_fresh00001234"
    waits = [r.__dict__.get("wait_s") for r in caplog.records if "rate limited" in r.message]
    assert waits == [0.3]


async def test_chat_refused_before_streaming(scripted: Scripted) -> None:
    scripted.on(
        "POST",
        "/run_sse",
        reply(body={"detail": "Session not found"}, status=404),
        reply(body={"code": 1002, "message": "session not found"}),
        reply(body={"code": 0, "data": {}}),
        reply(body=None, status=502),
    )
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    try:
        with pytest.raises(SessionNotFound):
            await collect(api.chat("42", "x"))
        with pytest.raises(SessionNotFound):
            await collect(api.chat("42", "x"))
        with pytest.raises(ProtocolError):
            await collect(api.chat("42", "x"))
        with pytest.raises(BackendUnavailable):
            await collect(api.chat("42", "x"))
    finally:
        await client.aclose()


async def test_chat_token_rejected_at_the_door_renews_and_sends_once(scripted: Scripted) -> None:
    scripted.on("POST", "/api/auth/anonymous-token", reply({"token": "nmv_usr_chatnew12345"}))
    scripted.on(
        "POST",
        "/run_sse",
        reply(body={"code": 1001, "message": "expired"}, status=401),
        sse(b'data: {"content":{"parts":[{"text":"hi"}]}}\n\n'),
    )
    renewed: list[Credentials] = []

    async def on_renew(creds: Credentials) -> None:
        renewed.append(creds)

    client = make_client(scripted.base_url)
    try:
        events = await collect(client.bind(anon(), on_renew).chat("42", "x"))
    finally:
        await client.aclose()
    assert events == [TextDelta("hi"), TurnComplete()]
    assert len(renewed) == 1
    auths = [s.headers["Authorization"] for s in scripted.calls("/run_sse")]
    assert auths == [f"Bearer {SECRET}", "Bearer nmv_usr_chatnew12345"]


async def test_chat_consumer_can_stop_early(scripted: Scripted) -> None:
    body = capture_streams()["add title"]
    scripted.on("POST", "/run_sse", sse(body[:300], 2.0, body[300:]))
    client = make_client(scripted.base_url)
    try:
        events = client.bind(anon()).chat("42", "x")
        async for event in events:
            assert event == TextDelta("Working on ")
            break
        await events.aclose()  # type: ignore[attr-defined]
    finally:
        await client.aclose()


# --- secrets ----------------------------------------------------------------------------------


async def test_tokens_never_in_logs_reprs_or_errors(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"code": 1001, "message": f"token {SECRET} expired; Bearer {SECRET}"}
    scripted.on("POST", "/api/auth/anonymous-token", reply({"token": "nmv_usr_second999999"}))
    scripted.on("GET", "/api/credits/balance/simple", reply(body=echo))
    scripted.on("POST", "/run_sse", reply(body={"detail": f"bad token {SECRET}"}, status=400))
    client = make_client(scripted.base_url)
    api = client.bind(anon())
    errors: list[BaseException] = []
    try:
        for call in (api.credits(), collect(api.chat("42", "x"))):
            try:
                await call
            except NemoError as exc:
                errors.append(exc)
    finally:
        await client.aclose()
    assert len(errors) == 2
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(api), repr(api.creds)]
    texts.append(caplog.text)
    for text in texts:
        assert SECRET not in text and "nmv_usr_second999999" not in text


async def test_passed_in_http_client_is_shared_and_not_closed(scripted: Scripted) -> None:
    scripted.on("GET", "/api/credits/balance/simple", reply({"available": 9}))
    async with httpx.AsyncClient() as http:
        client = NemoClient(http, ClientConfig(base_url=scripted.base_url + "/"))
        assert (await client.bind(anon()).credits()).available == 9
        await client.aclose()
        assert not http.is_closed


async def test_built_client_carries_the_wrapper_and_hooks_and_owns_its_pool(
    scripted: Scripted,
) -> None:
    scripted.on("GET", "/api/credits/balance/simple", reply({"available": 9}))
    through: list[str] = []
    answered: list[int] = []

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            through.append(request.url.path)
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def on_response(response: httpx.Response) -> None:
        answered.append(response.status_code)

    client = build_client(
        ClientConfig(base_url=scripted.base_url),
        max_connections=4,
        wrap=Recording,
        event_hooks={"response": [on_response]},
    )
    assert (await client.bind(anon()).credits()).available == 9
    await client.aclose()
    assert through == ["/api/credits/balance/simple"] and answered == [200]
    assert client.http.is_closed
