"""The client end to end against the simulator over real HTTP: endpoints, errors, faults."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from backend import (
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
    NemoApi,
    NemoClient,
    OutOfCredits,
    RateLimited,
    RenderJob,
    RenderStatus,
    SessionNotFound,
    StateDelta,
    StreamBroken,
    TextDelta,
    ToolCall,
    TurnComplete,
    UnsupportedFile,
    UploadFile,
    build_client,
    describe_changes,
    is_exportable,
    summarize_draft,
)
from backend.sim import SimConfig, Simulator

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x09\x08\x02\x00\x00\x00"
    + b"\x00" * 64
)


def sim_config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {
        "render_seconds": 0.6,
        "render_pending_s": 0.1,
        "chunk_delay_s": 0.0,
        "generate_seconds": 0.05,
        "edit_seconds": 0.0,
        "keepalive_every_s": 0.05,
    }
    base.update(overrides)
    return SimConfig(**base)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(sim_config())
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[NemoClient]:
    nemo = build_client(
        ClientConfig(base_url=sim.base_url, rate_limit_wait=0.05, platform="terminal")
    )
    try:
        yield nemo
    finally:
        await nemo.aclose()


class Renewals:
    def __init__(self) -> None:
        self.seen: list[Credentials] = []

    async def __call__(self, creds: Credentials) -> None:
        self.seen.append(creds)


async def new_api(client: NemoClient, renewals: Renewals | None = None) -> NemoApi:
    creds = await client.credentials(str(uuid.uuid4()))
    return client.bind(creds, renewals)


async def chat(api: NemoApi, session_id: str, text: str) -> list[ChatEvent]:
    return [event async for event in api.chat(session_id, text)]


def shown(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def wait_render(api: NemoApi, render_id: str, seconds: float = 5) -> RenderJob:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        job = await api.export_status(render_id)
        if job.status.finished or loop.time() > end:
            return job
        await asyncio.sleep(0.1)


# --- the whole flow ---------------------------------------------------------------------------


async def test_full_flow(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    assert api.creds.anonymous and api.creds.expires_at is not None
    start = await api.credits()
    assert start.available == 100
    session = await api.create_session("en")
    assert session.session_id and session.task_id
    up = await api.upload_files(session.session_id, [UploadFile("cat.png", "image/png", PNG, 81)])
    assert up[0].file_type == "image" and up[0].cdn_url.startswith(sim.base_url)
    assert (up[0].width, up[0].height) == (16, 9)

    events = await chat(api, session.session_id, "animate this photo of a cat, 6 seconds")
    assert any(isinstance(e, ToolCall) and e.name == "generate_video" for e in events)
    assert any(isinstance(e, StateDelta) for e in events)
    assert events[-1] == TurnComplete()
    text = shown(events)
    assert text.count("Working on it") <= 1  # partial chunks merged, final not repeated

    state = await api.state(session.session_id)
    assert is_exportable(state.draft)
    summary = summarize_draft(state.draft)
    assert summary.startswith("Timeline (1 track): 1. Video:") and "(0-6s)" in summary

    after_title = await chat(api, session.session_id, 'add a title "Cat Dreams"')
    assert after_title[-1] == TurnComplete()
    state2 = await api.state(session.session_id)
    change = describe_changes(state.draft, state2.draft)
    assert change is not None and "Cat Dreams" in change

    job = await api.start_export(session.session_id, state2.draft)
    assert job.status in (RenderStatus.PENDING, RenderStatus.PROCESSING)
    done = await wait_render(api, job.id)
    assert done.status is RenderStatus.COMPLETED and done.progress == 100 and done.url
    async with httpx.AsyncClient() as http:
        video = await http.get(done.url)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"

    assert (await api.credits()).available < start.available
    link = await api.claim_link(session.task_id, session.session_id)
    assert link.startswith("https://nemovideo.com/workspace/claim?ct=clm_")

    for request in sim.requests:
        if not request.path.startswith(("/api/", "/run_sse")):
            continue  # our own download of the video
        if request.path != "/api/auth/anonymous-token":
            assert request.headers["Authorization"].startswith("Bearer ")
        assert request.headers["X-Skill-Platform"] == "terminal"
        assert request.headers["X-Skill-Source"] == "nemobot"
        assert request.headers["X-Skill-Version"]


async def test_upload_urls_and_several_files(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("zh")
    files = await api.upload_urls(session.session_id, ["https://example.com/a/clip.mp4"])
    assert files[0].filename == "clip.mp4" and files[0].file_type == "video"
    many = await api.upload_files(
        session.session_id,
        [
            UploadFile("a.png", "image/png", PNG, len(PNG)),
            UploadFile("b.mp3", "audio/mpeg", b"ID3" + b"\x00" * 100, 103),
        ],
    )
    assert [f.file_type for f in many] == ["image", "audio"]


@pytest.mark.parametrize("shape", ["A", "B", "C"])
async def test_every_render_shape(sim: Simulator, client: NemoClient, shape: str) -> None:
    sim.config.render_shape = shape  # type: ignore[assignment]
    api = await new_api(client)
    session = await api.create_session("en")
    await chat(api, session.session_id, "make a video of the sea")
    draft = (await api.state(session.session_id)).draft
    job = await api.start_export(session.session_id, draft)
    done = await wait_render(api, job.id)
    assert done.id == job.id
    assert done.status is RenderStatus.COMPLETED and done.url and done.url.endswith(".mp4")


async def test_cancel_export(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    await chat(api, session.session_id, "make a video of rain")
    job = await api.start_export(session.session_id, (await api.state(session.session_id)).draft)
    await api.cancel_export(job.id)
    assert (await api.export_status(job.id)).status is RenderStatus.CANCELLED


# --- errors, in both envelope styles ------------------------------------------------------


@pytest.mark.parametrize("style", ["http", "ok"])
async def test_business_errors(sim: Simulator, client: NemoClient, style: str) -> None:
    sim.config.error_style = style  # type: ignore[assignment]
    api = await new_api(client)
    session = await api.create_session("en")
    sid = session.session_id

    sim.set_fault("session_lost", sid)
    with pytest.raises(SessionNotFound) as lost:
        await api.state(sid)
    assert lost.value.code == 1002

    session = await api.create_session("en")
    sid = session.session_id
    sim.set_fault("no_credits", sid)
    with pytest.raises(OutOfCredits) as poor:
        await chat(api, sid, "make a video of a dog")
    assert poor.value.anonymous and poor.value.link is not None
    assert f"bind={api.creds.user_id}" in poor.value.link
    sim.clear_faults()

    with pytest.raises(UnsupportedFile) as bad:
        await api.upload_urls(sid, ["https://example.com/notes.pdf"])
    assert bad.value.code == 4001 and "mp4" in bad.value.accepted

    sim.config.image_bytes = 10  # the server's limit is lower than ours
    with pytest.raises(FileTooLarge) as big:
        await api.upload_files(sid, [UploadFile("big.png", "image/png", PNG, len(PNG))])
    assert big.value.code == 4002 and big.value.limit == 10


async def test_export_blocked(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    await chat(api, session.session_id, "make a video of snow")
    sim.set_fault("export_blocked")
    with pytest.raises(ExportBlocked) as info:
        await api.start_export(session.session_id, (await api.state(session.session_id)).draft)
    assert info.value.status == 402


async def test_missing_attribution_is_export_blocked(sim: Simulator) -> None:
    bare = build_client(ClientConfig(base_url=sim.base_url, skill_source=""))
    try:
        api = await new_api(bare)
        session = await api.create_session("en")
        await chat(api, session.session_id, "make a video of a city")
        with pytest.raises(ExportBlocked):
            await api.start_export(session.session_id, (await api.state(session.session_id)).draft)
    finally:
        await bare.aclose()


async def test_rate_limited_once_then_fine(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    sim.set_fault("rate_limit_once", path="/api/credits")
    assert (await api.credits()).available == 100
    assert len(sim.requests_to("/api/credits")) == 2
    sim.set_fault("rate_limit_once", times=2, path="/api/credits")
    with pytest.raises(RateLimited) as info:
        await api.credits()
    assert info.value.retry_after == 1


async def test_rate_limited_chat_is_sent_again_once(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    sim.set_fault("rate_limit_once", path="/run_sse", retry_after=0.2)
    events = await chat(api, session.session_id, "hello")
    assert shown(events) and events[-1] == TurnComplete()
    assert len(sim.requests_to("/run_sse")) == 2
    sim.set_fault("rate_limit_once", times=2, path="/run_sse", retry_after=0.2)
    with pytest.raises(RateLimited) as info:
        await chat(api, session.session_id, "hello")
    assert info.value.retry_after == 0.2
    assert len(sim.requests_to("/run_sse")) == 4


async def test_server_error_and_slow_answers(sim: Simulator) -> None:
    quick = build_client(ClientConfig(base_url=sim.base_url, request_timeout=0.3))
    try:
        api = await new_api(quick)
        sim.set_fault("server_error", status=503)
        with pytest.raises(BackendUnavailable) as info:
            await api.credits()
        assert info.value.status == 503
        sim.set_fault("slow", seconds=1.0, times=1)
        with pytest.raises(BackendUnavailable, match="timed out"):
            await api.credits()
    finally:
        await quick.aclose()


async def test_token_expiry_mid_flow_renews_and_reports(sim: Simulator, client: NemoClient) -> None:
    renewals = Renewals()
    api = await new_api(client, renewals)
    old = api.creds
    sim.set_fault("token_expired")
    credits = await api.credits()
    assert credits.available == 100  # a new anonymous token, a new balance
    assert len(renewals.seen) == 1 and renewals.seen[0] == api.creds
    assert api.creds.token != old.token and api.creds.client_id == old.client_id
    # The session belonged to the old token: the next step is a new session.
    session = await api.create_session("en")
    sim.expire_token(api.creds.token)
    events = await chat(api, session.session_id, "hello")
    assert len(renewals.seen) == 2 and events  # refused at the door, renewed, sent once


async def test_operator_token(sim: Simulator) -> None:
    sim.config.operator_token = "nmv_op_simoperator1"
    operator = build_client(
        ClientConfig(base_url=sim.base_url, operator_token="nmv_op_simoperator1")
    )
    try:
        api = await new_api(operator)
        assert not api.creds.anonymous
        assert (await api.credits()).available == 25000
        assert sim.requests_to("/api/auth/anonymous-token") == []
    finally:
        await operator.aclose()


# --- chat faults ------------------------------------------------------------------------------


async def test_stream_cut_is_broken_and_not_resent(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    sim.set_fault("stream_cut", session.session_id, after=2)
    got: list[ChatEvent] = []
    with pytest.raises(StreamBroken):
        async for event in api.chat(session.session_id, "make a video of waves"):
            got.append(event)
    assert got and not any(isinstance(e, TurnComplete) for e in got)
    assert len(sim.requests_to("/run_sse")) == 1
    # Reconnect by reading state, never by re-sending: the edit took effect.
    assert is_exportable((await api.state(session.session_id)).draft)


async def test_malformed_lines_are_skipped(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    clean_session = await api.create_session("en")
    clean = await chat(api, clean_session.session_id, "hello there")
    dirty_session = await api.create_session("en")
    sim.set_fault("malformed_events", dirty_session.session_id)
    dirty = await chat(api, dirty_session.session_id, "hello there")
    assert shown(dirty) == shown(clean) and shown(clean)
    assert dirty[-1] == TurnComplete()


async def quiet_chat(
    sim: Simulator, read_timeout: float, quiet_s: float, keepalive_every_s: float
) -> list[ChatEvent]:
    """One turn of an agent quiet for `quiet_s`, sending keep-alives, to a client that
    waits `read_timeout` for a byte."""
    client = build_client(ClientConfig(base_url=sim.base_url, chat_read_timeout=read_timeout))
    try:
        api = await new_api(client)
        session = await api.create_session("en")
        sim.set_fault("quiet_stream", session.session_id, seconds=quiet_s, every=keepalive_every_s)
        return await chat(api, session.session_id, "hello")
    finally:
        await client.aclose()


async def test_quiet_stream_keeps_alive(sim: Simulator) -> None:
    events = await quiet_chat(sim, read_timeout=0.5, quiet_s=1.5, keepalive_every_s=0.2)
    assert events.count(KeepAlive()) >= 5
    assert shown(events) and events[-1] == TurnComplete()


async def test_quiet_beyond_the_read_timeout_breaks(sim: Simulator) -> None:
    with pytest.raises(StreamBroken):
        await quiet_chat(sim, read_timeout=0.3, quiet_s=2.0, keepalive_every_s=1.0)


@pytest.mark.parametrize("style", ["details", "plain", "broken"])
async def test_agent_crash_line(sim: Simulator, client: NemoClient, style: str) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    sim.set_fault("agent_crash", session.session_id, after=1, style=style, message="kaput")
    events = await chat(api, session.session_id, "make a video of a fox")
    assert isinstance(events[-1], AgentCrash) and "kaput" in events[-1].message
    assert TurnComplete() not in events


async def test_model_error_event(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    sim.set_fault("model_error", session.session_id, code="SAFETY", message="blocked")
    events = await chat(api, session.session_id, "hello")
    assert ModelError("SAFETY", "blocked") in events


async def test_some_edit_turns_end_without_text(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    silent = 0
    before = (await api.state(session.session_id)).draft
    for request in ("make a video of a lake", "add music", 'add a title "Lake"'):
        events = await chat(api, session.session_id, request)
        after = (await api.state(session.session_id)).draft
        if not shown(events):
            silent += 1
            assert events[-1] == TurnComplete()
            assert describe_changes(before, after)
        before = after
    assert silent == 1  # every third edit turn, deterministically


async def test_render_fails(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    await chat(api, session.session_id, "make a video of a storm")
    sim.set_fault("render_fail", session.session_id, at=0.2, message="worker crashed")
    job = await api.start_export(session.session_id, (await api.state(session.session_id)).draft)
    done = await wait_render(api, job.id)
    assert done.status is RenderStatus.FAILED and done.error == "worker crashed"
    assert done.url is None


async def test_render_never_finishes(sim: Simulator, client: NemoClient) -> None:
    api = await new_api(client)
    session = await api.create_session("en")
    await chat(api, session.session_id, "make a video of clouds")
    sim.set_fault("render_never_finishes", session.session_id, progress=90.0)
    job = await api.start_export(session.session_id, (await api.state(session.session_id)).draft)
    stuck = await wait_render(api, job.id, seconds=1.2)
    assert stuck.status is RenderStatus.PROCESSING and stuck.progress == 90.0


async def test_missing_client_id_from_the_server(sim: Simulator, client: NemoClient) -> None:
    with pytest.raises(MissingClientId) as info:
        await client.send(
            "POST", "/api/auth/anonymous-token", endpoint="anonymous-token", token=None
        )
    assert info.value.status == 400


async def test_stream_closed_early_looks_like_a_finished_turn(
    sim: Simulator, client: NemoClient
) -> None:
    """ADK has no done marker: a clean close is the end of a turn, whatever came before."""
    api = await new_api(client)
    session = await api.create_session("en")
    sim.set_fault("stream_cut", session.session_id, after=1, mode="eof")
    events = await chat(api, session.session_id, "make a video of a bird")
    assert events[-1] == TurnComplete()
    assert len(sim.requests_to("/run_sse")) == 1
